/**
 * A source plugin whose stop leaves its timer running (host/source-gate.ts): what it hands over after the sources are
 * stopped is ignored, said once, not committed behind the stop into a store being closed.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { startTestHost, tempDir, waitFor } from "../testing/index.ts";
import type { Logged } from "./plugins-fixtures.ts";
import { SDK } from "./reliability-process.ts";

declare global {
  var sloppyTimer: Timer | undefined;
  var sloppyStopped: boolean;
  var sloppyLateCalls: number;
  var sloppyLateErrors: string[];
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

let dir: string | undefined;
afterEach(async () => {
  clearInterval(globalThis.sloppyTimer);
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
