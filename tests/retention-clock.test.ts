/**
 * Retention by age and update times on a clock that jumps, on a real host's libSQL file: updates committed with
 * chosen times straight into the store are what a clock that jumped while kubemeta was down finds at the next start;
 * a clock handed to the host (HostOptions.clock) steps back while it runs.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import type { Update } from "../sdk/model.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";
import { storeChangedUntil } from "./store-libsql-setup.ts";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

const MINUTE = 60_000;

const timesRise = (updates: Update[]) => updates.every((u, i) => i === 0 || u.time >= (updates[i - 1]?.time ?? ""));

test("a clock ahead of the newest update by over maxAge prunes by age only what precedes it by maxAge", async () => {
  // The last update ten days ago.
  const dir = await storeChangedUntil(Date.now() - 10 * 24 * 60 * MINUTE);
  const th = await startTestHost({ dir, retention: { maxAge: "65m", interval: "20ms" } });
  hosts.push(th);
  await waitFor(() => th.host.log.oldest() > 1, 5_000, "retention pruning by age");
  // 65 minutes before the newest update are kept: versions 14 (an hour before 20) to 20.
  expect(th.host.log.oldest()).toBe(14);
  const kept = await th.host.log.read({ stream: "all", after: 13, limit: 100 });
  expect(kept.map((update) => update.version)).toEqual([14, 15, 16, 17, 18, 19, 20]);
});

test("a run of retention that removed updates is one info line, which README names with its fields", async () => {
  const dir = await storeChangedUntil(Date.now() - 10 * 24 * 60 * MINUTE);
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "info", write: (line) => void lines.push(JSON.parse(line)) });
  const th = await startTestHost({ dir, logger, retention: { maxAge: "65m", interval: "20ms" } });
  hosts.push(th);
  const pruned = () => lines.find((line) => line.msg === "retention pruned updates");
  await waitFor(() => pruned() !== undefined, 5_000, "the line of retention's run");
  expect(pruned()).toMatchObject({ level: "info", removed: 13, oldest: 14 });
  // README names the line and, right after it, each of its fields, so that an operator reads them without guessing.
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const at = readme.indexOf("`retention pruned updates`");
  expect(at).toBeGreaterThan(-1);
  const said = readme.slice(at, at + 300);
  const fields = Object.keys(pruned()!).filter((key) => !["level", "time", "msg"].includes(key));
  expect(fields.filter((field) => !said.includes(`\`${field}\``))).toEqual([]);
});

test("a clock stepped back while kubemeta was down stamps nothing before the newest stored, and says so", async () => {
  // The last update two hours ahead of the clock: the clock was set back two hours meanwhile.
  const dir = await storeChangedUntil(Date.now() + 120 * MINUTE);
  const warned: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "warn", write: (line) => void warned.push(JSON.parse(line)) });
  const th = await startTestHost({ dir, logger });
  hosts.push(th);
  void th.changes.apply("pods", "ADDED", rawPod("web"));
  await waitFor(() => th.host.log.head() === 21, 5_000, "the change committed");
  const [last, added] = await th.host.log.read({ stream: "all", after: 19, limit: 2 });
  expect(added?.version).toBe(21);
  expect(added?.time).toBe(last?.time ?? "");
  const said = warned.find((line) => String(line.msg).startsWith("the clock is behind the last update's time"));
  expect(said?.updateTime).toBe(last?.time ?? "");
  expect(Number(said?.behindMs)).toBeGreaterThan(119 * MINUTE);
});

test("a clock stepped back while kubemeta runs stamps nothing before the last, and retention keeps them", async () => {
  let behindMs = 0;
  const clock = () => Date.now() - behindMs;
  const th = await startTestHost({ retention: { maxAge: "65m", maxUpdates: 14, interval: "20ms" }, clock });
  hosts.push(th);
  // One Pod changed 15 times at once: 1-5 by the clock, 6-10 with it two hours back (a VM restored from a snapshot),
  // 11-15 with it right again (NTP stepped it): all within a second of each other.
  for (let version = 1; version <= 15; version++) {
    behindMs = version >= 6 && version <= 10 ? 120 * MINUTE : 0;
    void th.changes.apply("pods", "MODIFIED", rawPod("web", { phase: `phase-${version}` }));
  }
  // maxUpdates prunes version 1 once all 15 are committed: retention ran over them.
  await waitFor(() => th.host.log.oldest() > 1, 5_000, "retention to run");
  expect(th.host.log.oldest()).toBe(2);
  const kept = await th.host.log.read({ stream: "all", after: 1, limit: 100 });
  expect(kept.map((update) => update.version)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  expect(timesRise(kept)).toBe(true);
});

test("a quiet spell past maxAge, then a clock set back while down: the next update is stamped no earlier", async () => {
  // Every update of the first run stamped at one time: one run of retention prunes all of them it may by age at once.
  const at = Date.now();
  const retention = { maxAge: "50ms", interval: "20ms" };
  const first = await startTestHost({ retention, clock: () => at });
  hosts.push(first);
  void first.changes.apply("pods", "ADDED", rawPod("web"));
  void first.changes.apply("pods", "ADDED", rawPod("api"));
  await waitFor(() => first.host.log.head() === 2, 5_000, "the changes committed");
  const [seen] = await first.host.log.read({ stream: "all", after: 1, limit: 1 });
  expect(seen?.time).toBe(new Date(at).toISOString());
  // Quiet for longer than maxAge: retention prunes by age, but not the newest update, whose time consumers saw last.
  await waitFor(() => first.host.log.oldest() > 1, 5_000, "retention pruning by age");
  const oldest = first.host.log.oldest();
  await first.stop();
  hosts.pop();
  // The clock set back two hours while kubemeta was down.
  const th = await startTestHost({ dir: first.dir, retention, clock: () => Date.now() - 120 * MINUTE });
  hosts.push(th);
  void th.changes.apply("pods", "ADDED", rawPod("db"));
  await waitFor(() => th.host.log.head() === 3, 5_000, "the change committed");
  const [added] = await th.host.log.read({ stream: "all", after: 2, limit: 1 });
  expect(added?.time).toBe(seen?.time ?? "");
  expect(oldest).toBe(2);
});

test("after a restart, retention's first run prunes what passed maxAge: the cutoff moves from the term's start", async () => {
  const first = await startTestHost({});
  // Versions 1-3 of objects deleted by 4-6, all prunable by age; 7 the head, which retention keeps.
  for (const type of ["ADDED", "DELETED"] as const)
    for (let i = 0; i < 3; i++) first.changes.apply("pods", type, rawPod(`web-${i}`, { node: "n1" }));
  first.changes.apply("pods", "ADDED", rawPod("web-3", { node: "n1" }));
  await first.changes.flush();
  await first.stop();
  const started = performance.now();
  const th = await startTestHost({ dir: first.dir, retention: { maxAge: "1s", interval: "3s" } });
  hosts.push(th);
  await waitFor(() => th.host.log.oldest() === 7, 10_000, "retention pruning what passed maxAge");
  // Its first run, 3 s after the start (its cutoff moved from the first run instead: a whole interval later, for the
  // term, updates kept up to maxAge plus two intervals).
  expect(performance.now() - started).toBeLessThan(4_500);
}, 15_000);
