/** host/logger.ts: one JSON line per call, whatever the fields (README, "Health, metrics, logs"). */
import { expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { join } from "node:path";
import { createLogger, MAX_ERROR_CHARS } from "../host/logger.ts";
import { tempDir } from "../testing/index.ts";
import { freePort } from "./cluster-checks.ts";

function recorded() {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(line) });
  const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, parsed };
}

test("fields a line cannot serialize (a BigInt, a cycle, a throwing toJSON) still give one line, and no throw", () => {
  const { logger, lines, parsed } = recorded();
  const cycle: Record<string, unknown> = { name: "a" };
  cycle.self = cycle;
  logger.info("a bigint", { head: 12345678901234567890n });
  logger.error("a cycle", { cycle });
  logger.warn("a throwing toJSON", {
    value: {
      toJSON() {
        throw new Error("no JSON here");
      },
    },
  });
  expect(lines.every((line) => line.endsWith("\n") && line.indexOf("\n") === line.length - 1)).toBe(true);
  const [bigint, withCycle, throwing] = parsed();
  expect(bigint).toMatchObject({ level: "info", msg: "a bigint", head: "12345678901234567890" });
  expect(withCycle).toMatchObject({ level: "error", msg: "a cycle" });
  expect(String(withCycle?.unloggableFields)).toContain("cycl");
  expect(throwing).toMatchObject({ level: "warn", msg: "a throwing toJSON", unloggableFields: "no JSON here" });
});

test("a field named level, time or msg cannot rewrite the line's own: it is kept as field_<name>", () => {
  const { logger, parsed } = recorded();
  logger.child({ level: "debug" }).info("the event", { msg: "forged", time: "then" });
  const [line] = parsed();
  expect(line).toMatchObject({ level: "info", msg: "the event", field_level: "debug", field_msg: "forged" });
  expect(line?.field_time).toBe("then");
  expect(Date.parse(String(line?.time))).toBeGreaterThan(0);
  expect(Object.keys(line ?? {}).slice(0, 3)).toEqual(["level", "time", "msg"]);
});

test("an error keeps its code and its causes' messages and codes, three deep, whatever its getters throw", async () => {
  const { logger, parsed } = recorded();
  // A port nothing listens on: fetch's own ECONNREFUSED.
  const refused = await fetch(`http://127.0.0.1:${await freePort()}/`).catch((error: unknown) => error);
  const store = createClient({ url: `file:${join(await tempDir(), "store.db")}` });
  const sqlite = await store.execute("SELEC 1").catch((error: unknown) => error);
  store.close();
  const chain = (depth: number): Error =>
    depth === 0
      ? Object.assign(new Error("the socket"), { code: "EPIPE" })
      : new Error(`level ${depth}`, { cause: chain(depth - 1) });
  const hostile = new Error("its code throws", { cause: "a string cause" });
  Object.defineProperty(hostile, "code", {
    get() {
      throw new Error("no code");
    },
  });
  for (const error of [refused, sqlite, chain(5), hostile]) logger.error("failed", { error });
  const [fetched, libsql, deep, odd] = parsed().map((line) => line.error);
  expect(fetched).toMatchObject({ code: "ECONNREFUSED", message: expect.stringContaining("ECONNREFUSED") });
  expect(libsql).toMatchObject({ name: "LibsqlError", code: "SQLITE_ERROR", cause: { code: "SQLITE_ERROR" } });
  expect(deep).toEqual({
    name: "Error",
    message: "level 5",
    cause: {
      name: "Error",
      message: "level 4",
      cause: { name: "Error", message: "level 3", cause: { name: "Error", message: "level 2" } },
    },
  });
  expect(odd).toEqual({ name: "Error", message: "its code throws", cause: { message: "a string cause" } });
});

test("an error field that holds no Error says what was thrown, bounded; an Error's message is bounded too", () => {
  const { logger, parsed } = recorded();
  const cycle: Record<string, unknown> = { code: "E" };
  cycle.self = cycle;
  const thrown = [
    undefined,
    null,
    "refused",
    42,
    false,
    Symbol("s"),
    () => 1,
    { code: "X", at: [1n] },
    new Map(),
    cycle,
  ];
  for (const error of thrown) logger.error("failed", { error });
  logger.error("failed", { error: "x".repeat(MAX_ERROR_CHARS + 10) });
  logger.error("failed", { error: new Error("y".repeat(MAX_ERROR_CHARS + 5)) });
  const said = parsed().map((line) => line.error);
  expect(said.slice(0, 8)).toEqual([
    "undefined",
    "null",
    "refused",
    "42",
    "false",
    "Symbol(s)",
    "a function (anonymous)",
    '{"code":"X","at":["1"]}',
  ]);
  expect(said[8]).toBe("Map {}");
  expect(said[9]).toContain("code");
  expect(said[10]).toBe(`${"x".repeat(MAX_ERROR_CHARS)}… (10 more characters)`);
  expect(said[11]).toEqual({ name: "Error", message: `${"y".repeat(MAX_ERROR_CHARS)}… (5 more characters)` });
});

test("an error from Bun's fetch is logged without its request URL's path and query, and without Bun's hint", () => {
  const { logger, parsed } = recorded();
  const hint = "For more information, pass `verbose: true` in the second argument to fetch()";
  const reset = Object.assign(new Error(`The socket connection was closed unexpectedly. ${hint}`), {
    code: "ECONNRESET",
  });
  const named = new Error(
    `unable to verify the first certificate fetching "https://db:8080/v2/pipeline?token=s3cr3t". ${hint}`,
  );
  logger.error("a cursor load failed", { error: reset });
  logger.error("a read failed", { error: new Error("wrapped", { cause: named }) });
  const [first, second] = parsed() as {
    error: { name: string; message: string; code?: string; cause?: { message: string } };
  }[];
  expect(first!.error).toEqual({
    name: "Error",
    message: "The socket connection was closed unexpectedly.",
    code: "ECONNRESET",
  });
  expect(second!.error.cause!.message).toBe("unable to verify the first certificate fetching https://db:8080");
});
