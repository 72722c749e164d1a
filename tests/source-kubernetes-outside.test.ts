/** The kubernetes source as its README section has an operator configure it, driven from outside: a real `main.ts`. */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { forward, front, kubeconfigFor } from "./http-front.ts";
import { exitWithin, spawnMain } from "./reliability-process.ts";

let server: TestApiServer;
let dir: string;
beforeAll(async () => {
  [server, dir] = await Promise.all([startTestApiServer({ tls: false }), tempDir("kubemeta-source-outside-")]);
  populate(server, { nodes: 1, podsPerNode: 2 });
  await server.writeKubeconfig(join(dir, "kubeconfig"), "token");
});
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});
const running: ReturnType<typeof spawnMain>["child"][] = [];
afterEach(() => {
  for (const child of running.splice(0)) child.kill("SIGKILL");
});

/**
 * `main.ts` on a config whose one kubernetes source has `keys` besides its kubeconfig (the server's, else `kubeconfig`);
 * its HTTP URL once it listens.
 */
async function startMain(keys: string, kubeconfig = join(dir, "kubeconfig")) {
  const config = join(dir, "kubemeta.yaml");
  const source = `{ type: kubernetes, kubeconfig: ${kubeconfig}, ${keys} }`;
  const store = `file:${join(dir, `${crypto.randomUUID()}.db`)}`;
  await Bun.write(
    config,
    `http: { address: 127.0.0.1, port: 0 }\nstore: { type: libsql, url: '${store}' }\nsources: [${source}]\n` +
      "sinks: [{ type: sse }]\n",
  );
  const main = spawnMain(["--config", config], { cwd: dir });
  running.push(main.child);
  const url = (await main.stdout.waitFor(/"msg":"http listening","url":"(http:[^"]+)\/"/, 20_000))[1]!;
  return { ...main, url };
}

test("streamingList auto: a streaming list the API server held unanswered until its timeout is no refusal of streaming lists; the next one is a streaming list again, not a paginated LIST", async () => {
  server.resetRequests();
  // A server (or the way to it) that answers nothing, not even headers, until the watch's timeout ends it.
  server.stallWatches(true);
  const { child, stdout, url } = await startMain(
    "resources: [pods], watchTimeout: 1s, backoff: { initial: 50ms, max: 100ms }",
  );
  await stdout.waitFor(
    /"msg":"list\/watch failed; retrying".*"resource":"pods"|does not serve streaming lists/,
    10_000,
  );
  server.stallWatches(false);

  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 10_000, "/readyz to answer 200");
  // README: `auto` falls back to paginated LIST where the server refuses streaming lists (422).
  expect(server.requests()["list pods"]).toBeUndefined();
  expect(server.requests()["watchlist pods"]).toBeGreaterThanOrEqual(2);
  expect(stdout.lines("the API server does not serve streaming lists; using paginated LIST")).toEqual([]);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 10_000)).toBe(0);
}, 30_000);

test("watchTimeout: a streaming list whose headers never come is ended a quarter past its timeout (+2 s) and asked again, as README has it of a watch, headers or not", async () => {
  // A front that never answers the streaming list of pods; everything else goes through.
  const holding = front(server, (request, upstream) =>
    upstream.pathname === "/api/v1/pods" && upstream.searchParams.has("sendInitialEvents")
      ? new Promise<Response>(() => {})
      : forward(request, upstream),
  );
  const url = holding.proxy.url.href.replace(/\/$/, "");
  const kubeconfig = await kubeconfigFor(join(dir, "held"), url, server.token);
  try {
    const main = await startMain("resources: [pods, nodes], watchTimeout: 1s", kubeconfig);
    const streamingLists = () => holding.requests.filter((r) => r.startsWith("/api/v1/pods?")).length;
    // Each given up 1.25 × 1 s + 2 s after it was sent (inactivityTimeout is 90 s).
    await waitFor(() => streamingLists() >= 3, 12_000, "a third streaming list of pods");
    expect(
      main.stdout.lines("the API server kept a watch open past its timeout; watching again").length,
    ).toBeGreaterThan(0);
    const metrics = await (await fetch(`${main.url}/metrics`)).text();
    expect(metrics).toMatch(/kubemeta_source_watch_restarts_total\{reason="overdue",resource="pods"\} [1-9]/);
  } finally {
    holding.proxy.stop(true);
  }
}, 30_000);
