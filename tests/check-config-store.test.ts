/**
 * `--check` of a store plugin without its own check (Store.check): the one store it makes is started and stopped,
 * not a second one beside it (a plugin's create() may open what only its stop() closes).
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { checkConfig } from "../host/check-config.ts";
import { loadConfig } from "../host/config.ts";
import { silentLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";
import { SDK } from "./reliability-process.ts";

const dir = await tempDir("kubemeta-check-store-");
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A store that records, on the process's global, what was done with it. */
const RECORDING_STORE = `
import { defineStore, v } from ${JSON.stringify(SDK)};
const life = (globalThis.recordingStoreLife ??= []);
export default defineStore({
  type: "recording",
  description: "Records its life.",
  schema: v.strictObject({}),
  create: () => {
    life.push("create");
    return {
      async start() {
        life.push("start");
        return { epoch: "e", head: 0, oldest: 0, resumePoints: new Map(), streamHeads: new Map(), cursors: new Map() };
      },
      async stop() {
        life.push("stop");
      },
    };
  },
});
`;

test("a store without its own check is made once, started and stopped", async () => {
  await Bun.write(join(dir, "recording.ts"), RECORDING_STORE);
  await Bun.write(join(dir, "kubemeta.yaml"), "store: { type: ./recording.ts }\n");
  const config = await loadConfig(join(dir, "kubemeta.yaml"), { registry: builtins, env: {} });
  const { issues } = await checkConfig(config, silentLogger);
  expect(issues).toEqual([]);
  expect((globalThis as { recordingStoreLife?: string[] }).recordingStoreLife).toEqual(["create", "start", "stop"]);
});
