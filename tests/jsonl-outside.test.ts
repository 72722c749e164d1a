/** The `jsonl` sink as its README section has a user write it, driven from outside: a real `main.ts` process. */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { startTestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir } from "../testing/index.ts";
import { exitWithin, MAIN, Output, runMain } from "./reliability-process.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("two jsonl sinks on kubemeta's own stderr, by its path, both write there, as two on `-` do", async () => {
  const dir = await tempDir("kubemeta-jsonl-outside-");
  const server = await startTestApiServer();
  cleanups.push(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  populate(server, { nodes: 1, podsPerNode: 2 });
  await server.writeKubeconfig(join(dir, "kubeconfig"), "token");
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      "cluster: { name: outside }",
      "log: { level: warn }",
      "http: { address: 127.0.0.1, port: 0 }",
      "store: { type: libsql, url: 'file:./k.db' }",
      "sources:",
      `  - { type: kubernetes, kubeconfig: ${join(dir, "kubeconfig")}, resources: [pods, namespaces] }`,
      "sinks:",
      // As in a container, where stdout and stderr are what the runtime collects: one stream to each of two readers.
      "  - { type: jsonl, name: everything, path: /dev/stderr }",
      "  - { type: jsonl, name: cluster-scoped, path: /dev/stderr, stream: shared }",
    ].join("\n"),
  );
  // README: "several may write to stdout", and a path naming kubemeta's own stdout or stderr is written as `-` is.
  const checked = await runMain(["--check", "--config", config], { cwd: dir });
  expect({ code: checked.code, stdout: checked.stdout }).toEqual({ code: 0, stdout: "config is valid\n" });

  const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", config], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  new Output(proc.stdout);
  const err = new Output(proc.stderr);
  await err.waitFor(/"stream":"all".*\n/, 30_000);
  await err.waitFor(/"stream":"shared".*\n/, 30_000);
  proc.kill("SIGTERM");
  expect(await exitWithin(proc, 10_000)).toBe(0);
  // Through one stream, the two sinks' lines are whole: none cut into by the other's.
  const envelopes = (await err.all()).split("\n").filter((line) => line.includes('"epoch"'));
  for (const line of envelopes) expect(JSON.parse(line)).toHaveProperty("version");
});
