/**
 * A remote store that hangs instead of refusing (its server stopped: connections accepted, nothing answered) fails a
 * request only after store.timeout, 60 s. Neither /readyz nor a reader waits for that: once the commit in flight has
 * waited STORE_UNANSWERED_MS for its answer /readyz says the store is not answering, and is ready again once the store
 * answers; a read that waited as long is answered 503, to come back, as one that failed.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { STORE_CHECK_MS, STORE_UNANSWERED_MS } from "../core/commit-queue.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { populate, startChurn } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { kubernetesSource } from "./faults-cluster.ts";
import { MAIN, Output, spawnHranaServer } from "./reliability-process.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** /readyz's status and body. */
async function readiness(url: string): Promise<{ status: number; body: { ready: boolean; waiting: string[] } }> {
  const response = await fetch(`${url}readyz`);
  return { status: response.status, body: (await response.json()) as { ready: boolean; waiting: string[] } };
}

/** kubemeta in a process of its own on the test libSQL server in one too, with `sources` (YAML lines); ready. */
async function readyOnStoreServer(dir: string, sources: string[]) {
  const server = await spawnHranaServer(join(dir, "store", "kubemeta.db"));
  cleanups.push(() => server.child.kill("SIGKILL"));
  await Bun.write(
    join(dir, "kubemeta.yaml"),
    ["http: { address: 127.0.0.1, port: 0 }", `store: { type: libsql, url: "${server.url}" }`, ...sources].join("\n"),
  );
  const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", "kubemeta.yaml"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => proc.kill("SIGKILL"));
  const out = new Output(proc.stdout);
  const url = (await out.waitFor(/"msg":"http listening","url":"([^"]+)"/, 30_000))[1]!;
  await waitFor(async () => (await readiness(url)).status === 200, 30_000, "kubemeta to be ready");
  return { server, out, url };
}

test("a remote store that stops answering: /readyz and a read 503 after the bound, not store.timeout", async () => {
  const dir = await tempDir("kubemeta-store-hang-");
  const api = await startTestApiServer({ bookmarkIntervalMs: 200 });
  cleanups.push(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });
  populate(api, { nodes: 10, podsPerNode: 20 });
  const kubeconfig = join(dir, "kubeconfig");
  await api.writeKubeconfig(kubeconfig, "token");
  const { server, out, url } = await readyOnStoreServer(dir, [
    "sources:",
    ...kubernetesSource(kubeconfig, ["pods", "nodes"]),
  ]);
  // Commits are due: the churn's, and the bookmarks' resume points.
  const churn = startChurn(api, { perSecond: 50 });
  cleanups.push(() => churn.stop());
  await waitFor(() => churn.changes() > 20, 5_000, "the churn under way");

  server.child.kill("SIGSTOP");
  const stoppedAt = performance.now();
  // A reader meanwhile: /v1/objects reads the store (the newest updates are served from memory, not the objects).
  const objects = fetch(`${url}v1/objects`, { signal: AbortSignal.timeout(STORE_UNANSWERED_MS + 5_000) }).then(
    async (response) => ({
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      body: await response.json(),
      afterMs: performance.now() - stoppedAt,
    }),
  );
  const unready = await waitFor(
    async () => {
      const { status, body } = await readiness(url);
      return status === 503 && body;
    },
    STORE_UNANSWERED_MS + 5_000,
    "/readyz to answer 503",
  );
  const unreadyAfterMs = performance.now() - stoppedAt;
  console.log(`/readyz answered 503 ${unreadyAfterMs.toFixed(0)} ms after the store stopped answering`);
  expect(unready).toEqual({
    ready: false,
    waiting: [expect.stringMatching(/^store not answering: a commit has waited \d+ s for its answer$/)],
  });
  // The commit in flight was asked for at most a commit's time before the store stopped.
  expect(unreadyAfterMs).toBeGreaterThan(STORE_UNANSWERED_MS - 1_000);

  // Said in the log as well, once: a commit that hangs fails (and is logged failing) only at store.timeout. Written as
  // /readyz turns, the line may still be in the pipe when /readyz answers.
  await out.waitFor(/"msg":"store not answering a commit; waiting for it"/, 5_000);
  expect(out.lines("store not answering a commit; waiting for it")).toEqual([
    expect.objectContaining({ level: "warn", waitedMs: STORE_UNANSWERED_MS, updates: expect.any(Number) }),
  ]);

  // Told to come back once its read waited as long, not at store.timeout (60 s).
  const answered = await objects;
  console.log(`/v1/objects answered ${answered.status} ${answered.afterMs.toFixed(0)} ms after the store stopped`);
  expect(answered).toMatchObject({
    status: 503,
    retryAfter: "5",
    body: { error: "the store cannot be read now; retry later" },
  });
  expect(answered.afterMs).toBeGreaterThan(STORE_UNANSWERED_MS - 1_000);

  // Answering again, the store takes the commit that waited: ready again, long before store.timeout.
  server.child.kill("SIGCONT");
  await waitFor(async () => (await readiness(url)).status === 200, 5_000, "/readyz to answer 200 again");
  const answers = await waitFor(() => out.lines("store answers again")[0], 5_000, "the answer's log line");
  expect(answers.level).toBe("info");
  expect(answers.waitedMs).toBeGreaterThan(STORE_UNANSWERED_MS);
  expect(out.lines("store not answering a commit; waiting for it")).toHaveLength(1);
  expect(out.lines("store commit failed; retrying")).toEqual([]);
}, 60_000);

test("a store that stops answering with nothing to commit: /readyz 503 within the check and the bound", async () => {
  const dir = await tempDir("kubemeta-store-hang-quiet-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // No source: nothing to commit, as a cluster where nothing changes. Found by the leader's check of the store, an
  // empty commit each STORE_CHECK_MS: up to that after the store hangs, then the bound.
  const { server, url } = await readyOnStoreServer(dir, ["sources: []"]);

  server.child.kill("SIGSTOP");
  cleanups.push(() => server.child.kill("SIGCONT"));
  const stoppedAt = performance.now();
  const unready = await waitFor(
    async () => {
      const { status, body } = await readiness(url);
      return status === 503 && body;
    },
    STORE_CHECK_MS + STORE_UNANSWERED_MS + 5_000,
    "/readyz to answer 503",
  );
  console.log(
    `/readyz answered 503 ${(performance.now() - stoppedAt).toFixed(0)} ms after the store stopped answering`,
  );
  expect(unready).toEqual({
    ready: false,
    waiting: [expect.stringMatching(/^store not answering: a commit has waited \d+ s for its answer$/)],
  });
  server.child.kill("SIGCONT");
  await waitFor(async () => (await readiness(url)).status === 200, 5_000, "/readyz to answer 200 again");
}, 60_000);
