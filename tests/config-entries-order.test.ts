/**
 * A config's errors come in the order of its entries, as `--check` prints them: plugin modules load side by side, and
 * one that fails late (an import that is not found) is still said before the entries after it.
 */
import { expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";

test("the entries' errors in the entries' order, whichever of their modules loads first", async () => {
  const error = await resolveConfig(
    {
      sources: [{ type: "./missing-source.ts" }, { type: "nope" }],
      sinks: [
        { type: "./missing-sink.ts", name: "a" },
        { type: "nope", name: "b" },
        { type: "jsonl", name: "c", stream: "nodes/x" },
      ],
    },
    { baseDir: import.meta.dir, registry: builtins },
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).issues.map((issue) => issue.path)).toEqual([
    "sources[0].type",
    "sources[1].type",
    "sinks[0].type",
    "sinks[1].type",
    "sinks[2].stream",
  ]);
});
