/**
 * Custom plugins from the config: a module in a folder outside the repository, loaded by
 * path, imports `kubemeta/sdk` and receives updates, whether kubemeta is installed in the
 * plugin's folder or in an ancestor's (the container image); it gets the host's own
 * modules. Plugins that throw (on start or on delivery) or hang leave the other sinks working.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdir, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import * as valibot from "valibot";
import { consume } from "../sdk/consume.ts";
import { BehindRetentionError } from "../sdk/contract.ts";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { sinkMetric, upTo } from "./plugins-fixtures.ts";
import { completeLines } from "./file-lines.ts";
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

/** Links `<dir>/node_modules/kubemeta` to the repository, as `npm install /path/to/kubemeta` in `dir` does. */
async function installKubemeta(dir: string): Promise<void> {
  await mkdir(join(dir, "node_modules"), { recursive: true });
  await symlink(repo, join(dir, "node_modules/kubemeta"));
}

/** A plugin folder of the user's own, outside the repository, with kubemeta installed in it. */
async function pluginFolder(): Promise<string> {
  const dir = await tempDir("kubemeta-plugins-");
  await mkdir(join(dir, "plugins"));
  await installKubemeta(dir);
  return dir;
}

/** The example plugin, copied unchanged: it imports nothing of kubemeta's but `kubemeta/sdk`. */
async function copyExample(to: string): Promise<void> {
  const source = await Bun.file(join(repo, "examples/sink-plugin/deletions.ts")).text();
  expect([...source.matchAll(/from "([^"]+)"/g)].map((m) => m[1])).toEqual(["kubemeta/sdk"]);
  await Bun.write(to, source);
}

/** A module that hands out what `kubemeta/sdk` resolved to, to compare with the host's own modules. */
const probe = `export { v, consume, BehindRetentionError } from "kubemeta/sdk";`;

async function expectHostModules(file: string): Promise<void> {
  await Bun.write(file, probe);
  const resolved = (await import(file)) as { v: typeof valibot; consume: unknown; BehindRetentionError: unknown };
  expect(resolved.v.parse).toBe(valibot.parse);
  expect(resolved.consume).toBe(consume);
  expect(resolved.BehindRetentionError).toBe(BehindRetentionError);
}

/** Runs the example plugin from `dir`/`path` on a host: a deletion reaches its audit file. */
async function expectExampleWorks(dir: string, path: string): Promise<void> {
  const audit = join(dir, "audit.log");
  host = await startTestHost({ dir, sinks: [{ type: path, name: "audit", file: audit }] });
  host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
  await waitFor(async () => (await completeLines(audit)).length === 1, 5_000, "the audit line");
  expect((await completeLines(audit))[0]).toContain("DELETED Pod default/web-1 uid=uid-web-1");
}

test(
  "the example sink, in a folder outside the repository where kubemeta is installed, " +
    "imports kubemeta/sdk and receives updates",
  async () => {
    folder = await pluginFolder();
    await copyExample(join(folder, "plugins/deletions.ts"));
    await expectHostModules(join(folder, "plugins/probe.ts"));
    await expectExampleWorks(folder, "./plugins/deletions.ts");
  },
);

test(
  "a plugin folder without node_modules resolves kubemeta/sdk from an ancestor's, " +
    "as a plugin mounted in the container image does",
  async () => {
    // The image's layout: /node_modules/kubemeta -> /app, a plugin mounted at /plugins/….
    folder = await tempDir("kubemeta-image-");
    await installKubemeta(folder);
    const mounted = join(folder, "mnt/plugins");
    await mkdir(mounted, { recursive: true });
    await copyExample(join(mounted, "deletions.ts"));
    await expectHostModules(join(mounted, "probe.ts"));
    await expectExampleWorks(folder, join(mounted, "deletions.ts"));
  },
);

test("the host validates an outside plugin's config with the schema it built from the SDK's valibot", async () => {
  folder = await pluginFolder();
  await copyExample(join(folder, "plugins/deletions.ts"));
  const error = await resolveConfig(
    { sinks: [{ type: "./plugins/deletions.ts", fille: "audit.log", kinds: "Pod", batch: { size: 0 } }] },
    { baseDir: folder, registry: builtins },
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  const issues = (error as ConfigError).issues;
  expect(issues.map((issue) => issue.path).sort()).toEqual([
    "sinks[0].batch.size",
    "sinks[0].file",
    "sinks[0].fille",
    "sinks[0].kinds",
  ]);
  // A key missing or misspelt is said as it is of a built-in's, the known key read from the plugin's schema.
  expect(issues.filter((issue) => issue.path.includes("fil"))).toEqual([
    { path: "sinks[0].file", message: "missing: this key is required" },
    { path: "sinks[0].fille", message: 'unknown key; did you mean "file"?' },
  ]);
});

test(
  "kubemeta/testing runs a plugin against a host with a synthetic source in a plain script, " + "with no test runner",
  async () => {
    folder = await pluginFolder();
    await copyExample(join(folder, "plugins/deletions.ts"));
    const script = `
    import { rawPod, startTestHost, waitFor } from "kubemeta/testing";
    const file = "${join(folder, "audit.log")}";
    const host = await startTestHost({ dir: "${folder}", sinks: [{ type: "./plugins/deletions.ts", file }] });
    host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
    await waitFor(
      async () => (await Bun.file(file).exists()) && (await Bun.file(file).text()).includes("web-1"),
      5_000,
      "the audit line",
    );
    await host.stop();
    console.log("audited:", (await Bun.file(file).text()).trim());
  `;
    await Bun.write(join(folder, "run.ts"), script);
    const child = Bun.spawn([process.execPath, "run", "run.ts"], { cwd: folder, stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    expect(stdout).toMatch(/^audited: .* DELETED Pod default\/web-1 uid=uid-web-1$/m);
  },
);

test(
  "startTestHost without a dir: a relative plugin type is the working directory's; a host that cannot start leaves " +
    "no temp dir behind",
  async () => {
    folder = await tempDir();
    const file = join(folder, "audit.log");
    const type = `./${relative(process.cwd(), join(repo, "examples/sink-plugin/deletions.ts"))}`;
    host = await startTestHost({ sinks: [{ type, file }] });
    host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
    await waitFor(async () => (await Bun.file(file).exists()) && (await Bun.file(file).text()).includes("web-1"));

    // A temp dir of its own for the failed start (os.tmpdir() reads TMPDIR at each call): nobody else's dirs count.
    const isolated = join(folder, "tmp");
    await mkdir(isolated);
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = isolated;
    try {
      await expect(startTestHost({ sinks: [{ type: "./no-such-plugin.ts" }] })).rejects.toThrow(ConfigError);
      expect(tmpdir()).toBe(isolated);
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
    expect(await readdir(isolated)).toEqual([]);
  },
);

/** A sink module whose start always throws. */
const throwsOnStart = `
import { v } from "kubemeta/sdk";
export default {
  kind: "sink", type: "throws-on-start", description: "Fails to start.", schema: v.strictObject({}),
  create: () => ({ async start() { throw new Error("cannot reach its backend"); }, async stop() {} }),
};`;

/** A sink module whose factory refuses its config (as `consume` does a `fanOut` of another stream than `all`). */
const throwsOnCreate = `
import { v } from "kubemeta/sdk";
export default {
  kind: "sink", type: "throws-on-create", description: "Refuses to be created.", schema: v.strictObject({}),
  create: () => { throw new Error("refuses its config"); },
};`;

/**
 * A consume-based sink module whose deliver throws on its first two batches, then appends the versions it gets to a
 * file.
 */
const throwsOnDelivery = `
import { appendFile } from "node:fs/promises";
import { consume, defineSink, retrySchema, v } from "kubemeta/sdk";
export default defineSink({
  type: "throws-on-delivery", description: "Throws on its first two batches.",
  schema: v.strictObject({ file: v.string(), retry: retrySchema() }),
  create(config, ctx) {
    let throwsLeft = 2;
    return consume(ctx, {
      retry: config.retry,
      async deliver(envelopes) {
        if (throwsLeft-- > 0) throw new Error("receiver exploded");
        await appendFile(config.file, envelopes.map((e) => e.version + "\\n").join(""));
      },
    });
  },
});`;

/** A consume-based sink module that takes one batch, notes it in a file, and never finishes delivering it. */
const hangsOnDelivery = `
import { appendFile } from "node:fs/promises";
import { consume, defineSink, v } from "kubemeta/sdk";
export default defineSink({
  type: "hangs-on-delivery", description: "Hangs on its first batch.", schema: v.strictObject({ marker: v.string() }),
  create: (config, ctx) =>
    consume(ctx, {
      stallAfterMs: 100,
      stopWaitMs: 100,
      async deliver(envelopes) {
        await appendFile(config.marker, "got " + envelopes.length + "\\n");
        await new Promise(() => {});
      },
    }),
});`;

test("sinks that throw when created, on start or on delivery, or hang, leave the other sinks working", async () => {
  folder = await pluginFolder();
  await Bun.write(join(folder, "plugins/throws-on-create.ts"), throwsOnCreate);
  await Bun.write(join(folder, "plugins/throws-on-start.ts"), throwsOnStart);
  await Bun.write(join(folder, "plugins/throws-on-delivery.ts"), throwsOnDelivery);
  await Bun.write(join(folder, "plugins/hangs-on-delivery.ts"), hangsOnDelivery);
  receiver = await startReceiver();
  const file = join(folder, "updates.jsonl");
  const flaky = join(folder, "flaky.txt");
  const marker = join(folder, "hung.txt");
  host = await startTestHost({
    dir: folder,
    sinks: [
      { type: "./plugins/throws-on-create.ts", name: "refused" },
      { type: "./plugins/throws-on-start.ts", name: "broken" },
      { type: "./plugins/throws-on-delivery.ts", name: "flaky", file: flaky, retry: { initial: "10ms", max: "50ms" } },
      { type: "./plugins/hangs-on-delivery.ts", name: "stuck", marker },
      { type: "jsonl", path: file },
      webhookSink(receiver.url),
    ],
  });
  for (let i = 0; i < 20; i++) host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));

  await waitFor(async () => (await completeLines(file)).length === 20, 5_000, "20 lines from jsonl");
  await waitFor(() => deduplicated(receiver!.accepted()).length === 20, 5_000, "20 updates at the webhook");
  await waitFor(async () => (await completeLines(flaky)).length === 20, 5_000, "the flaky sink catching up");
  expect((await completeLines(file)).map((line) => JSON.parse(line).version)).toEqual(upTo(20));
  expect((await completeLines(flaky)).map(Number)).toEqual(upTo(20));
  expect((await completeLines(marker))[0]).toMatch(/^got \d+$/);
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_stalled", "stuck") === 1, 5_000, "the stall report");

  expect(sinkMetric(host, "counter", "kubemeta_sink_delivery_failures_total", "flaky", { step: "deliver" })).toBe(2);
  const failures = host.host.metrics.counter("kubemeta_plugin_failures_total", "");
  expect(failures.get({ plugin: "broken", kind: "sink", phase: "start" })).toBeGreaterThanOrEqual(1);
  expect(failures.get({ plugin: "refused", kind: "sink", phase: "start" })).toBeGreaterThanOrEqual(1);
  expect((await fetch(`${host.url}/readyz`)).status).toBe(200);
  const metrics = await (await fetch(`${host.url}/metrics`)).text();
  expect(metrics).toContain('kubemeta_sink_stalled{sink="stuck"} 1');
  expect(metrics).toContain('kubemeta_sink_delivery_failures_total{sink="flaky",step="deliver"} 2');
});
