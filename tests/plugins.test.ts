/**
 * Custom plugins from the config: a module in a folder outside the repository, loaded by
 * path, receives updates; plugins that throw (on start or on delivery) or hang leave the
 * other sinks working.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { sinkMetric, upTo } from "./plugins-fixtures.ts";
import { deduplicated, startReceiver, webhookSink, type Receiver } from "./webhook-receiver.ts";

const repo = join(import.meta.dir, "..");
let host: TestHost | undefined;
let receiver: Receiver | undefined;
let folder: string | undefined;
afterEach(async () => {
  await host?.destroy();
  await receiver?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
  host = receiver = folder = undefined;
});

/**
 * A plugin folder of the user's own, outside the repository. Its one package, valibot,
 * comes from a node_modules link (as `bun add valibot` there would provide it).
 */
async function pluginFolder(): Promise<string> {
  const dir = await tempDir("kubemeta-plugins-");
  await mkdir(join(dir, "plugins"));
  await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
  return dir;
}

async function lines(file: string): Promise<string[]> {
  const f = Bun.file(file);
  return (await f.exists()) ? (await f.text()).trim().split("\n") : [];
}

/** The example plugin as a user keeps it outside the repository: kubemeta's files imported by absolute path. */
async function copyExample(to: string): Promise<void> {
  const source = await Bun.file(join(repo, "examples/sink-plugin/deletions.ts")).text();
  expect(source).toContain('from "../../sdk/consume.ts"');
  await Bun.write(to, source.replaceAll('from "../../sdk/', `from "${repo}/sdk/`));
}

test("the example sink, kept in a folder outside the repository and named by path in the config, receives updates", async () => {
  folder = await pluginFolder();
  await copyExample(join(folder, "plugins/deletions.ts"));
  const audit = join(folder, "audit.log");
  host = await startTestHost({ dir: folder, sinks: [{ type: "./plugins/deletions.ts", name: "audit", file: audit }] });
  host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
  await waitFor(async () => (await lines(audit)).length === 1, 5_000, "the audit line");
  expect((await lines(audit))[0]).toContain("DELETED Pod default/web-1 uid=uid-web-1");
});

/** A sink module whose start always throws. */
const throwsOnStart = `
import * as v from "valibot";
export default {
  kind: "sink", type: "throws-on-start", description: "Fails to start.", schema: v.strictObject({}),
  create: () => ({ async start() { throw new Error("cannot reach its backend"); }, async stop() {} }),
};`;

/** A consume-based sink module whose deliver throws on its first two batches, then appends the versions it gets to a file. */
const throwsOnDelivery = `
import * as v from "valibot";
import { appendFile } from "node:fs/promises";
import { defineSink } from "REPO/sdk/contract.ts";
import { consume } from "REPO/sdk/consume.ts";
export default defineSink({
  type: "throws-on-delivery", description: "Throws on its first two batches.", schema: v.strictObject({ file: v.string() }),
  create(config, ctx) {
    let throwsLeft = 2;
    return consume(ctx, {
      retry: { initialMs: 10, maxMs: 50 },
      async deliver(updates) {
        if (throwsLeft-- > 0) throw new Error("receiver exploded");
        await appendFile(config.file, updates.map((u) => u.version + "\\n").join(""));
      },
    });
  },
});`;

/** A consume-based sink module that takes one batch, notes it in a file, and never finishes delivering it. */
const hangsOnDelivery = `
import * as v from "valibot";
import { appendFile } from "node:fs/promises";
import { defineSink } from "REPO/sdk/contract.ts";
import { consume } from "REPO/sdk/consume.ts";
export default defineSink({
  type: "hangs-on-delivery", description: "Hangs on its first batch.", schema: v.strictObject({ marker: v.string() }),
  create: (config, ctx) =>
    consume(ctx, {
      stallAfterMs: 100,
      stopWaitMs: 100,
      async deliver(updates) {
        await appendFile(config.marker, "got " + updates.length + "\\n");
        await new Promise(() => {});
      },
    }),
});`;

test("sinks that throw on start, throw on delivery or hang on delivery leave the other sinks working", async () => {
  folder = await pluginFolder();
  await Bun.write(join(folder, "plugins/throws-on-start.ts"), throwsOnStart);
  await Bun.write(join(folder, "plugins/throws-on-delivery.ts"), throwsOnDelivery.replaceAll("REPO", repo));
  await Bun.write(join(folder, "plugins/hangs-on-delivery.ts"), hangsOnDelivery.replaceAll("REPO", repo));
  receiver = await startReceiver();
  const file = join(folder, "updates.jsonl");
  const flaky = join(folder, "flaky.txt");
  const marker = join(folder, "hung.txt");
  host = await startTestHost({
    dir: folder,
    sinks: [
      { type: "./plugins/throws-on-start.ts", name: "broken" },
      { type: "./plugins/throws-on-delivery.ts", name: "flaky", file: flaky },
      { type: "./plugins/hangs-on-delivery.ts", name: "stuck", marker },
      { type: "jsonl", path: file },
      webhookSink(receiver.url),
    ],
  });
  for (let i = 0; i < 20; i++) host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));

  await waitFor(async () => (await lines(file)).length === 20, 5_000, "20 lines from jsonl");
  await waitFor(() => deduplicated(receiver!.accepted()).length === 20, 5_000, "20 updates at the webhook");
  await waitFor(async () => (await lines(flaky)).length === 20, 5_000, "the flaky sink catching up");
  expect((await lines(file)).map((line) => JSON.parse(line).version)).toEqual(upTo(20));
  expect((await lines(flaky)).map(Number)).toEqual(upTo(20));
  expect((await lines(marker))[0]).toMatch(/^got \d+$/);
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_stalled", "stuck") === 1, 5_000, "the stall report");

  expect(sinkMetric(host, "counter", "kubemeta_sink_delivery_failures_total", "flaky", { step: "deliver" })).toBe(2);
  const failures = host.host.metrics.counter("kubemeta_plugin_failures_total", "");
  expect(failures.get({ plugin: "broken", kind: "sink", phase: "start" })).toBeGreaterThanOrEqual(1);
  expect((await fetch(`${host.url}/readyz`)).status).toBe(200);
  const metrics = await (await fetch(`${host.url}/metrics`)).text();
  expect(metrics).toContain('kubemeta_sink_stalled{sink="stuck"} 1');
  expect(metrics).toContain('kubemeta_sink_delivery_failures_total{sink="flaky",step="deliver"} 2');
});
