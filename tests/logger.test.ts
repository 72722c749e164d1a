/** host/logger.ts: one JSON line per call, whatever the fields (README, "Health, metrics, logs"). */
import { expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";

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
