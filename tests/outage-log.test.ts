/**
 * outageLog (sdk/telemetry.ts), the log of a store away for minutes: its first failure an error, the repeats a warning
 * at most once an interval with the attempts failed so far, one line once it works again; the next outage is an error
 * again, however soon it comes. The kubernetes source's retries take it with a warning first and causes.
 */
import { expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { outageLog } from "../sdk/telemetry.ts";
import type { Logged } from "./plugins-fixtures.ts";

test("an outage: one error, then a warning per interval with the failed attempts, an info line once over", async () => {
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const everyMs = 50;
  const log = outageLog(logger, "commit failed", "commits work again", { everyMs });
  const began = Date.now();
  for (let i = 0; i < 3; i++) log.failed({ attempt: i + 1 });
  // The interval is what is waited for: the next failure after it is the warning.
  await Bun.sleep(everyMs);
  log.failed({ attempt: 4 });
  log.failed({ attempt: 5 });
  log.succeeded();
  log.succeeded();
  log.failed({ attempt: 1 });
  const lines = logged.map(({ level, msg, attempt, failedAttempts, unlogged }) => ({
    level,
    msg,
    attempt,
    failedAttempts,
    unlogged,
  }));
  expect(lines).toEqual([
    { level: "error", msg: "commit failed", attempt: 1, failedAttempts: undefined, unlogged: undefined },
    { level: "warn", msg: "commit failed", attempt: 4, failedAttempts: 4, unlogged: 2 },
    { level: "info", msg: "commits work again", attempt: undefined, failedAttempts: 5, unlogged: undefined },
    { level: "error", msg: "commit failed", attempt: 1, failedAttempts: undefined, unlogged: undefined },
  ]);
  expect(logged[2]!.downMs).toBeGreaterThanOrEqual(everyMs);
  expect(logged[2]!.downMs).toBeLessThanOrEqual(Date.now() - began);
});

test("first: warn; the repeats between warnings at debug; a cause new to the outage a warning at once", () => {
  const logged: Logged[] = [];
  const logger = createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const log = outageLog(logger, "watch failed", "watching again", { first: "warn", everyMs: 60_000 });
  for (const cause of ["500", "500", "403", "500", "403"]) log.failed({ cause }, cause);
  log.succeeded();
  const lines = logged.map(({ level, cause, failedAttempts, unlogged }) => ({
    level,
    cause,
    failedAttempts,
    unlogged,
  }));
  expect(lines).toEqual([
    { level: "warn", cause: "500", failedAttempts: undefined, unlogged: undefined },
    { level: "debug", cause: "500", failedAttempts: 2, unlogged: undefined },
    { level: "warn", cause: "403", failedAttempts: 3, unlogged: 1 },
    { level: "debug", cause: "500", failedAttempts: 4, unlogged: undefined },
    { level: "debug", cause: "403", failedAttempts: 5, unlogged: undefined },
    { level: "info", cause: undefined, failedAttempts: 5, unlogged: undefined },
  ]);
});

test("a level given with a failure is that of its line said at once: the outage's first, a new cause", () => {
  const logged: Logged[] = [];
  const logger = createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const log = outageLog(logger, "delivery failed", "delivery works again", { everyMs: 60_000 });
  // A sink's connection dropped (a warning), then what it did not expect (an error), each given as such.
  log.failed({}, "ConnectionDropped", "warn");
  log.failed({}, "ConnectionDropped", "warn");
  log.failed({}, "PermissionsError", "error");
  log.failed({}, "PermissionsError", "error");
  log.failed({}, "ConnectionDropped", "error");
  expect(logged.map(({ level }) => level)).toEqual(["warn", "debug", "error", "debug", "debug"]);
});

test("failing while an outage lasts; succeeded says so with what worked, and whether it said anything", () => {
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const log = outageLog(logger, "cannot connect", "connected", { first: "warn" });
  expect([log.failing(), log.succeeded({ server: "a" })]).toEqual([false, false]);
  log.failed({});
  expect(log.failing()).toBe(true);
  expect(log.succeeded({ server: "b", failedAttempts: 0 })).toBe(true);
  expect(log.failing()).toBe(false);
  // What worked is said with the outage's end; its own fields win over a field of the same name.
  expect(logged.map(({ level, msg, server, failedAttempts }) => ({ level, msg, server, failedAttempts }))).toEqual([
    { level: "warn", msg: "cannot connect", server: undefined, failedAttempts: undefined },
    { level: "info", msg: "connected", server: "b", failedAttempts: 1 },
  ]);
});
