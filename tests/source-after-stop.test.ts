/**
 * A source plugin whose stop leaves its timer running (host/source-gate.ts): what it hands over after the sources are
 * stopped is ignored, said once, not committed behind the stop into a store being closed; and what an instance retired
 * by the host's supervisor (host/supervise.ts) hands over is not committed beside the instance created in its place.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import type { Logged } from "./plugins-fixtures.ts";
import { SDK } from "./reliability-process.ts";

declare global {
  var sloppyTimer: Timer | undefined;
  var sloppyStopped: boolean;
  var sloppyLateCalls: number;
  var sloppyLateErrors: string[];
  var restartedFails: "start" | "create";
  var restartedCreated: number;
  var restartedFirstStopped: boolean;
  var restartedSecondSynced: boolean;
}

// Each 5 ms: an object applied, then a relist that lists nothing; its stop forgets the timer.
const sloppy = `
import { defineSource, v } from ${JSON.stringify(SDK)};
export default defineSource({
  type: "sloppy", description: "Its stop forgets its timer.", schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      let n = 0;
      globalThis.sloppyTimer = setInterval(async () => {
        const late = globalThis.sloppyStopped;
        if (late) globalThis.sloppyLateCalls++;
        const rv = String(++n);
        try {
          await ctx.changes.apply("things", "ADDED", {
            apiVersion: "example.com/v1", kind: "Thing",
            metadata: { name: "t", uid: "t", resourceVersion: rv, labels: { n: rv } },
          });
          await ctx.changes.relist("empty", "Empty").end(rv);
        } catch (error) {
          if (late) globalThis.sloppyLateErrors.push(String(error));
        }
      }, 5);
      ctx.synced();
    },
    async stop() {},
  }),
});`;

// Its first instance applies `first` each 10 ms, from a start that never ends (its stop forgets the timer) or from a
// create that then throws.
const restarted = `
import { defineSource, v } from ${JSON.stringify(SDK)};
const thing = (name, n) => ({
  apiVersion: "example.com/v1", kind: "Thing",
  metadata: { name, uid: name, resourceVersion: String(n), labels: { n: String(n) } },
});
const leak = (ctx) => {
  let n = 0;
  globalThis.sloppyTimer = setInterval(() => {
    if (globalThis.restartedFirstStopped) globalThis.sloppyLateCalls++;
    void ctx.changes.apply("things", "ADDED", thing("first", ++n));
  }, 10);
};
export default defineSource({
  type: "restarted", description: "Its first instance fails, its timer left running.", schema: v.strictObject({}),
  create: (_config, ctx) => {
    const first = globalThis.restartedCreated++ === 0;
    if (first && globalThis.restartedFails === "create") {
      leak(ctx);
      globalThis.restartedFirstStopped = true;
      throw new Error("refused");
    }
    return {
      async start() {
        if (first) {
          leak(ctx);
          await new Promise(() => {});
        }
        await ctx.changes.apply("things", "ADDED", thing("second", 1e9));
        await ctx.changes.flush();
        globalThis.restartedSecondSynced = true;
        ctx.synced();
      },
      async stop() {
        if (first) globalThis.restartedFirstStopped = true;
      },
    };
  },
});`;

let dir: string | undefined;
let th: TestHost | undefined;
afterEach(async () => {
  clearInterval(globalThis.sloppyTimer);
  await th?.stop();
  th = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

test("a source that hands changes over after its stop is ignored and said once, no error behind the stop", async () => {
  dir = await tempDir("kubemeta-source-after-stop-");
  await Bun.write(join(dir, "sloppy.ts"), sloppy);
  Object.assign(globalThis, { sloppyStopped: false, sloppyLateCalls: 0, sloppyLateErrors: [] });
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const th = await startTestHost({ dir, extra: { sources: [{ type: "./sloppy.ts" }] }, logger });
  await waitFor(() => th.host.log.head() >= 3, 5_000, "the source's changes committed");
  await th.stop();
  globalThis.sloppyStopped = true;
  const said = logged.length;
  await waitFor(() => globalThis.sloppyLateCalls >= 20, 5_000, "20 rounds after the stop");
  // Was: `store commit failed; retrying`, then each late apply rejected (`the libsql store is not started`), an
  // unhandled rejection per change where a source does not await it.
  expect(globalThis.sloppyLateErrors).toEqual([]);
  expect(logged.slice(said).filter((line) => line.level === "error")).toEqual([]);
  const late = logged.filter((line) => line.msg.startsWith("a source handed a change over after its stop"));
  expect(late.map(({ source, call }) => ({ source, call }))).toEqual([{ source: "sloppy", call: "apply" }]);
});

const retiredInstances = [
  { fails: "start", how: "whose start hung, stopped and created again," },
  { fails: "create", how: "whose create threw after starting a timer" },
] as const;

test.each(retiredInstances)(
  "an instance $how hands over nothing beside the new one",
  async ({ fails }) => {
    dir = await tempDir("kubemeta-source-restarted-");
    await Bun.write(join(dir, "restarted.ts"), restarted);
    Object.assign(globalThis, {
      restartedFails: fails,
      restartedCreated: 0,
      restartedFirstStopped: false,
      restartedSecondSynced: false,
      sloppyLateCalls: 0,
    });
    const logged: Logged[] = [];
    const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
    // A first start that hangs holds the host's start up to the host's deadline for a plugin's start (10 s).
    th = await startTestHost({ dir, extra: { sources: [{ type: "./restarted.ts" }] }, logger });
    const host = th.host;
    await waitFor(() => globalThis.restartedSecondSynced, 5_000, "the second instance's change committed");
    const head = host.log.head();
    const late = globalThis.sloppyLateCalls;
    await waitFor(() => globalThis.sloppyLateCalls >= late + 20, 5_000, "20 applies of the first instance after");
    await th.changes.flush();
    // Was: each of the first instance's applies committed beside the second's, the object it had stopped handing over
    // changed 100 times a second for good.
    expect(host.log.head()).toBe(head);
    const said = logged.filter((line) => line.msg.startsWith("a source handed a change over after its stop"));
    expect(said.map(({ source, call }) => ({ source, call }))).toEqual([{ source: "restarted", call: "apply" }]);
  },
  30_000,
);
