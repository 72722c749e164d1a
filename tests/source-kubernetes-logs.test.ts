/**
 * What the kubernetes source writes to the log, `/readyz` and `--check` about its API server: never the credentials a
 * kubeconfig's `server:` URL may carry.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { runMain } from "./reliability-process.ts";
import { RecordingSink, runSource, scratchDir, until } from "./source-kubernetes-recorder.ts";

let server: TestApiServer;
let scratch: Awaited<ReturnType<typeof scratchDir>>;

beforeAll(async () => {
  server = await startTestApiServer();
  populate(server, { nodes: 1, podsPerNode: 2 });
  scratch = await scratchDir();
});

afterAll(async () => {
  await server.stop();
  await scratch.remove();
});

function recordingLogger(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", write: (line) => void lines.push(line) }) };
}

const SECRET = "s3cret-in-the-url";

/** The test API server's token kubeconfig with user and password in its `server:` URL, at `origin` (its own). */
async function credentialsInUrl(name: string, origin = server.url): Promise<string> {
  const withUserinfo = origin.replace("https://", `https://kube:${SECRET}@`);
  const file = join(scratch.dir, `${name}.yaml`);
  await Bun.write(file, server.kubeconfig("token").replace(`server: ${server.url}`, `server: ${withUserinfo}`));
  return file;
}

test("a server URL with credentials: the log shows it with its password hidden; /readyz, --check never", async () => {
  const { lines, logger } = recordingLogger();
  const sink = new RecordingSink();
  const running = await runSource(sink, { kubeconfig: await credentialsInUrl("working"), resources: ["pods"] }, logger);
  try {
    await running.synced;
  } finally {
    await running.stop();
  }
  const starting = lines.map((line) => JSON.parse(line)).find((line) => line.msg === "kubernetes source starting");
  expect(starting.server).toBe(server.url.replace("https://", "https://kube:***@"));

  // A server that does not answer: its failures in the log and /readyz's reason.
  const failing = await runSource(
    sink,
    { kubeconfig: await credentialsInUrl("refused", "https://127.0.0.1:1"), resources: ["pods"] },
    logger,
  );
  try {
    await until(() => /ECONNREFUSED/.test(failing.waiting() ?? ""), "the refused connection in /readyz's reason");
  } finally {
    await failing.stop();
  }
  const config = join(scratch.dir, "kubemeta.yaml");
  await Bun.write(config, `sources:\n  - type: kubernetes\n    kubeconfig: ${join(scratch.dir, "refused.yaml")}\n`);
  // --check loads the kubeconfig a config names (and creates the default store in its working directory).
  const check = await runMain(["--check", "--config", config], { cwd: scratch.dir });
  expect(check.code).toBe(0);
  for (const said of [...lines, failing.waiting(), check.stdout, check.stderr]) expect(said).not.toContain(SECRET);
});
