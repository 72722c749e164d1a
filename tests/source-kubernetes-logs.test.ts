/**
 * What the kubernetes source writes to the log, `/readyz` and `--check` about its API server: never the credentials a
 * kubeconfig's `server:` URL may carry; its failures as `/readyz` says them, without Bun's request URL and hint.
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

test("a failed request's log line says it as /readyz does: without Bun's request URL and verbose hint", async () => {
  const { lines, logger } = recordingLogger();
  const file = join(scratch.dir, "server-name.yaml");
  await Bun.write(
    file,
    server.kubeconfig("token").replace("server: ", "tls-server-name: elsewhere.example.com\n    server: "),
  );
  // A paginated LIST (its pages retried on their own) and a resource discovery must find: every retry line.
  const config = { kubeconfig: file, resources: ["pods", "argoproj.io/v1alpha1/rollouts"], streamingList: "never" };
  const running = await runSource(new RecordingSink(), config, logger);
  const retries = ["list page failed; retrying it", "discovery failed; retrying"];
  const logged = () => lines.map((line) => JSON.parse(line)).filter((line) => retries.includes(line.msg));
  try {
    await until(() => retries.every((msg) => logged().some((line) => line.msg === msg)), "both retry lines");
  } finally {
    await running.stop();
  }
  const said = `ERR_TLS_CERT_ALTNAME_INVALID fetching ${server.url}`;
  for (const line of logged()) expect(line.error).toEqual({ name: expect.any(String), message: said });
  expect(running.waiting()).toContain(`argoproj.io/v1alpha1/rollouts (discovery failed: ${said})`);
  expect(running.waiting()).toContain(`pods: list/watch failing, retrying: ${said}`);
});
