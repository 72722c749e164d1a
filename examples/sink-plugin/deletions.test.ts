/**
 * How to test a sink plugin: run a real kubemeta host (a libSQL file in a temp dir, HTTP
 * on loopback) with your plugin in its config, feed it changes the way the Kubernetes
 * source would, and check what your plugin did. `kubemeta/testing` is the harness; it
 * resolves like `kubemeta/sdk`.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "kubemeta/testing";

const plugin = join(import.meta.dir, "deletions.ts");
let host: TestHost | undefined;
afterEach(() => host?.destroy());

async function lines(file: string): Promise<string[]> {
  const audit = Bun.file(file);
  return (await audit.exists()) ? (await audit.text()).trim().split("\n") : [];
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
