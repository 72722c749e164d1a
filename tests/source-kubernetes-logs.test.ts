/**
 * What the kubernetes source writes to the log, `/readyz` and `--check` about its API server: never the credentials a
 * kubeconfig's `server:` URL may carry; its failures as `/readyz` says them, without Bun's request URL and hint; a
 * run of failures as one warning, a warning more for each new cause, and one line once it works again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { errorText } from "../protocol/error-text.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { runMain } from "./reliability-process.ts";
import { createSource, RecordingSink, runSource, scratchDir, until } from "./source-kubernetes-recorder.ts";

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
  // An error as the logger writes every Error, its code included (not one string of JSON).
  const error = { name: "TypeError", message: said, code: "ERR_TLS_CERT_ALTNAME_INVALID" };
  for (const line of logged()) expect(line.error).toEqual(error);
  expect(running.waiting()).toContain(`argoproj.io/v1alpha1/rollouts (discovery failed: ${said})`);
  expect(running.waiting()).toContain(`pods: list/watch failing, retrying: ${said}`);
});

test("a run of failed attempts: a warning, repeats at debug, one for a new cause, one line once it works", async () => {
  const { lines, logger } = recordingLogger();
  server.failNext({ verb: "list", resource: "pods", status: 500, count: 3 });
  server.failNext({ verb: "watch", resource: "pods", status: 500, count: 3 });
  server.failNext({ verb: "watch", resource: "pods", status: 403 });
  server.failNext({ verb: "discovery", resource: "/apis/argoproj.io/v1alpha1", status: 500, count: 3 });
  const config = { kubeconfig: await credentialsInUrl("runs"), resources: ["pods", "argoproj.io/v1alpha1/rollouts"] };
  const running = await runSource(new RecordingSink(), { ...config, streamingList: "never" }, logger);
  const logged = () =>
    lines
      .map((line) => JSON.parse(line))
      .filter((line) => /failed; retrying| works? again/.test(line.msg))
      .map(({ level, msg, resource, failedAttempts, unlogged }) => ({
        level,
        msg,
        resource,
        failedAttempts,
        unlogged,
      }));
  const recovered = (msg: string) => logged().some((line) => line.msg === msg);
  try {
    await until(() => recovered("list pages work again"), "the list once its pages are answered");
    await until(() => recovered("list/watch works again") && recovered("discovery works again"), "both recoveries");
  } finally {
    await running.stop();
  }
  const run = (msg: string, recovery: string, resource: string, levels: string[]) => [
    ...levels.map((level, i) => ({
      level,
      msg,
      resource,
      failedAttempts: i === 0 ? undefined : i + 1,
      unlogged: level === "warn" && i > 1 ? i - 1 : undefined,
    })),
    { level: "info", msg: recovery, resource, failedAttempts: levels.length, unlogged: undefined },
  ];
  const of = (resource: string) => logged().filter((line) => line.resource === resource);
  expect(of("pods")).toEqual([
    ...run("list page failed; retrying it", "list pages work again", "pods", ["warn", "debug", "debug"]),
    // The 403 is a cause the run has not had yet: a warning at once, saying how many were left out.
    ...run("list/watch failed; retrying", "list/watch works again", "pods", ["warn", "debug", "debug", "warn"]),
  ]);
  expect(of("argoproj.io/v1alpha1/rollouts")).toEqual(
    run("discovery failed; retrying", "discovery works again", "argoproj.io/v1alpha1/rollouts", [
      "warn",
      "debug",
      "debug",
    ]),
  );
});

test("a watch that works again says so once it is established, with no event or bookmark to come", async () => {
  // A quiet resource behind a server that sends no bookmarks: nothing arrives on the watch that works again.
  const quiet = await startTestApiServer({ bookmarkIntervalMs: 3_600_000 });
  const { lines, logger } = recordingLogger();
  try {
    populate(quiet, { nodes: 1, podsPerNode: 1 });
    quiet.failNext({ verb: "watch", resource: "pods", status: 500, count: 2 });
    const kubeconfig = join(scratch.dir, "quiet.yaml");
    await quiet.writeKubeconfig(kubeconfig, "token");
    const config = { kubeconfig, resources: ["pods"], streamingList: "never" };
    const running = await runSource(new RecordingSink(), config, logger);
    try {
      await until(() => lines.some((line) => line.includes('"list/watch works again"')), "the recovery line");
    } finally {
      await running.stop();
    }
  } finally {
    await quiet.stop();
  }
  const logged = lines
    .map((line) => JSON.parse(line))
    .filter((line) => line.msg.startsWith("list/watch"))
    .map(({ level, msg, failedAttempts }) => ({ level, msg, failedAttempts }));
  expect(logged).toEqual([
    { level: "warn", msg: "list/watch failed; retrying", failedAttempts: undefined },
    { level: "debug", msg: "list/watch failed; retrying", failedAttempts: 2 },
    { level: "info", msg: "list/watch works again", failedAttempts: 2 },
  ]);
});

test("a failed request whose message names no URL is said without the verbose hint too (a reset)", async () => {
  // Accepts, then closes at once: Bun's fetch fails with ECONNRESET, its message the hint and no URL.
  const closer = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { open: (socket) => void socket.end(), data() {} },
  });
  try {
    const failed = await fetch(`http://127.0.0.1:${closer.port}/api`).catch((error: unknown) => error);
    expect(String((failed as Error).message)).toContain("verbose: true");
    const said = errorText(failed);
    expect(said).toStartWith("ECONNRESET: ");
    expect(said).not.toContain("verbose");
  } finally {
    closer.stop(true);
  }
});

test("a stop while the source loads the Kubernetes client leaves it stopped: it does not go on to start", async () => {
  const { lines, logger } = recordingLogger();
  const kubeconfig = join(scratch.dir, "stopped-at-once.yaml");
  await Bun.write(kubeconfig, server.kubeconfig("token"));
  const running = createSource(new RecordingSink(), { kubeconfig }, logger);
  const starting = running.source.start();
  await running.stop();
  await starting;
  const started = lines.some((line) => line.includes("kubernetes source starting"));
  // Without the check, what started after the stop is stopped here, so that nothing outlives the test.
  await running.stop();
  expect(started).toBe(false);
});
