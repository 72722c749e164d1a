/**
 * How to test a sink plugin: run a real kubemeta host (a libSQL file in a temp dir, HTTP
 * on loopback) with your plugin in its config, feed it changes the way the Kubernetes
 * source would, and check what your plugin did. `kubemeta/testing` is the harness; it
 * resolves like `kubemeta/sdk`.
 */
import { afterEach, expect, test } from "bun:test";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { checkPluginContract, rawPod, startTestHost, tempDir, waitFor, type TestHost } from "kubemeta/testing";
import deletions from "./deletions.ts";

const plugin = join(import.meta.dir, "deletions.ts");
let host: TestHost | undefined;
afterEach(() => host?.destroy());

/** The audit's whole lines: none while the file is made but not written yet, as a sink's first write opens it first. */
async function lines(file: string): Promise<string[]> {
  const audit = Bun.file(file);
  const text = (await audit.exists()) ? await audit.text() : "";
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((line) => line !== "");
}

test("records each deleted pod once, and resumes after a restart", async () => {
  const dir = await tempDir();
  const file = join(dir, "deletions.log");
  const sinks = [{ type: plugin, file, kinds: ["Pod"] }];
  host = await startTestHost({ dir, sinks });
  host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  host.changes.apply("pods", "ADDED", rawPod("web-2", { node: "n1" }));
  host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
  await waitFor(async () => (await lines(file)).length === 1, 5_000, "the first deletion");
  expect((await lines(file))[0]).toMatch(/ DELETED Pod default\/web-1 uid=uid-web-1$/);

  await host.stop();
  host = await startTestHost({ dir, sinks });
  host.changes.apply("pods", "DELETED", rawPod("web-2", { node: "n1" }));
  await waitFor(async () => (await lines(file)).length === 2, 5_000, "the second deletion");
  expect((await lines(file))[1]).toContain("DELETED Pod default/web-2");
});

test("a kind spelt as a resource's name (pods) is a config error, not an audit left empty", async () => {
  const dir = await tempDir();
  const sinks = [{ type: plugin, file: join(dir, "deletions.log"), kinds: ["pods"] }];
  const started: TestHost | Error = await startTestHost({ dir, sinks }).catch((error: Error) => error);
  if (!(started instanceof Error)) await started.destroy();
  expect(String(started)).toContain("must be an API kind such as Pod");
});

test("the audit file it makes is its user's alone (0600), whatever the umask", async () => {
  const dir = await tempDir();
  const file = join(dir, "deletions.log");
  const umask = process.umask(0);
  try {
    host = await startTestHost({ dir, sinks: [{ type: plugin, file }] });
    host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    host.changes.apply("pods", "DELETED", rawPod("web-1", { node: "n1" }));
    await waitFor(async () => (await lines(file)).length === 1, 5_000, "the deletion");
  } finally {
    process.umask(umask);
  }
  // Each line names an object of the cluster: what kubemeta's tokens guard.
  expect(((await stat(file)).mode & 0o777).toString(8)).toBe("600");
});

test("keeps the plugin contract: example valid, stop without start, start settling, twice each", async () => {
  const dir = await tempDir();
  host = await startTestHost({ dir });
  expect(await checkPluginContract(deletions, { host, config: { file: join(dir, "deletions.log") } })).toEqual([]);
});
