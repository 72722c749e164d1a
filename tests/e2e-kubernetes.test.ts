/**
 * End to end, as an operator runs it: `bun run main.ts` as a separate process, pointed by
 * a kubeconfig at the wire-faithful API server over TLS, storing in a libSQL file.
 * 1,000 pods on 50 nodes with churn; then kill -9, changes while it is down, restart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import type { Subprocess } from "bun";
import type { Store } from "../sdk/contract.ts";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate, startChurn } from "../simulator/population.ts";
import { tempDir, waitFor, expectGapFreeWithWholeChains } from "../testing/index.ts";
import { clusterChecks } from "./cluster-checks.ts";
import { loadConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { policyRules } from "../cli/rbac.ts";

const KINDS = ["Pod", "Node", "Namespace", "Service", "EndpointSlice", "ReplicaSet", "Deployment"];
const ROOT = join(import.meta.dir, "..");

let server: TestApiServer;
let dir: string;
let kubemeta: { proc: Subprocess<"ignore", "pipe", "inherit">; url: string } | undefined;

async function startKubemeta() {
  const proc = Bun.spawn([process.execPath, "run", "main.ts", "--config", join(dir, "kubemeta.yaml")], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "inherit",
  });
  const url = await readListeningUrl(proc.stdout);
  kubemeta = { proc, url };
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 30_000, "kubemeta to be ready");
  return kubemeta;
}

/** Reads JSON log lines until the "http listening" one; keeps draining stdout afterwards. */
async function readListeningUrl(stdout: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("kubemeta exited before listening");
    buffer += decoder.decode(value, { stream: true });
    const match = /"msg":"http listening","url":"([^"]+)"/.exec(buffer);
    if (match) {
      (async () => {
        while (!(await reader.read()).done);
      })();
      return match[1]!.replace(/\/$/, "");
    }
  }
}

const withStore = <T>(work: (store: Store) => Promise<T>): Promise<T> =>
  clusterChecks(server, { url: `file:${join(dir, "data", "kubemeta.db")}` }).withStore(work);

/** The API server's state, slimmed, against the store's current objects: equal when kubemeta caught up. */
async function storeMatchesServer(): Promise<boolean> {
  const expected = new Map<string, number>();
  for (const kind of KINDS) {
    for (const object of server.list(kind))
      expected.set(`${kind}/${object.metadata!.uid}`, digest(slim(kind, object as KubeObject)));
  }
  const { objects } = await withStore((store) => store.snapshot({}));
  if (objects.length !== expected.size) return false;
  return objects.every((o) => expected.get(`${o.kind}/${o.uid}`) === digest(o.object));
}

async function allUpdates(): Promise<Update[]> {
  return withStore((store) => store.readUpdates({ stream: "all", after: 0, limit: 10_000_000 }));
}

/**
 * Each request kubemeta made (by the simulator's count) is one `main.ts rbac` grants for its config: a streaming list
 * is a watch; discovery reads non-resource URLs, which every authenticated client may.
 */
async function expectGrantedByRbac(requests: Record<string, number>) {
  const rules = policyRules(await loadConfig(join(dir, "kubemeta.yaml"), { registry: builtins }));
  const denied = Object.keys(requests).filter((request) => {
    const [verb, resource] = request.split(" ") as [string, string];
    if (verb === "discovery") return false;
    const asked = verb === "watchlist" ? "watch" : verb;
    return !rules.some((rule) => rule.resources.includes(resource) && rule.verbs.includes(asked));
  });
  expect(denied).toEqual([]);
}

beforeAll(async () => {
  dir = await tempDir("kubemeta-e2e-");
  server = await startTestApiServer({ bookmarkIntervalMs: 200 });
  populate(server, { nodes: 50, podsPerNode: 20 });
  await server.writeKubeconfig(join(dir, "kubeconfig"), "token");
  await Bun.write(
    join(dir, "kubemeta.yaml"),
    [
      "cluster: { name: e2e }",
      "log: { level: info }",
      "http: { address: 127.0.0.1, port: 0 }",
      `store: { type: libsql, url: "file:${join(dir, "data", "kubemeta.db")}" }`,
      "sources:",
      `  - type: kubernetes`,
      `    kubeconfig: ${join(dir, "kubeconfig")}`,
      `    resources: [pods, nodes, namespaces, services, endpointslices, replicasets, deployments]`,
    ].join("\n"),
  );
});

afterAll(async () => {
  kubemeta?.proc.kill("SIGKILL");
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("kubemeta against a 1,000-pod cluster", () => {
  test("with churn: the store ends equal to the API server, versions gap-free, prev chains whole", async () => {
    const { url } = await startKubemeta();
    const churn = startChurn(server, { perSecond: 100, seed: 7 });
    await waitFor(() => churn.changes() >= 200, 20_000, "churn");
    churn.stop();
    await waitFor(storeMatchesServer, 30_000, "the store to equal the API server");
    const updates = await allUpdates();
    expect(updates.length).toBeGreaterThan(1000);
    expectGapFreeWithWholeChains(updates);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    await expectGrantedByRbac(server.requests());
  }, 90_000);

  test("after kill -9: no LIST, DELETED for what vanished meanwhile, nothing for unchanged objects", async () => {
    await waitFor(storeMatchesServer, 30_000, "the store to equal the API server");
    kubemeta!.proc.kill("SIGKILL");
    await kubemeta!.proc.exited;
    const headBefore = (await allUpdates()).length;

    const pods = server.list("Pod");
    const deleted = pods
      .slice(0, 5)
      .map((p) => server.delete("Pod", p.metadata!.namespace!, p.metadata!.name!)!.metadata!.uid!);
    const relabelled = pods.slice(5, 8).map((p) => {
      server.patch("Pod", p.metadata!.namespace!, p.metadata!.name!, (o) => {
        (o.metadata!.labels as Record<string, string>)["kubemeta.test/relabelled"] = "yes";
      });
      return p.metadata!.uid!;
    });
    server.resetRequests();

    await startKubemeta();
    await waitFor(storeMatchesServer, 30_000, "the store to equal the API server");
    const requests = server.requests();
    const lists = Object.entries(requests).filter(([key]) => key.startsWith("list ") || key.startsWith("watchlist "));
    expect(lists).toEqual([]);
    expect(requests["watch pods"]).toBeGreaterThanOrEqual(1);

    const since = (await allUpdates()).slice(headBefore);
    expect(
      since
        .filter((u) => u.type === "DELETED")
        .map((u) => u.uid)
        .sort(),
    ).toEqual([...deleted].sort());
    expect(
      since
        .filter((u) => u.type === "MODIFIED")
        .map((u) => u.uid)
        .sort(),
    ).toEqual([...relabelled].sort());
    expect(since.length).toBe(deleted.length + relabelled.length);
    expectGapFreeWithWholeChains(await allUpdates());
  }, 90_000);

  test("after kill -9 past the watch history (410): the relist diff yields only true differences", async () => {
    kubemeta!.proc.kill("SIGKILL");
    await kubemeta!.proc.exited;
    const headBefore = (await allUpdates()).length;
    const deleted = server
      .list("Pod")
      .slice(0, 3)
      .map((p) => server.delete("Pod", p.metadata!.namespace!, p.metadata!.name!)!.metadata!.uid!);
    server.compact();

    await startKubemeta();
    await waitFor(storeMatchesServer, 30_000, "the store to equal the API server");
    const since = (await allUpdates()).slice(headBefore);
    expect(since.map((u) => `${u.type} ${u.uid}`).sort()).toEqual(deleted.map((uid) => `DELETED ${uid}`).sort());
    expectGapFreeWithWholeChains(await allUpdates());
  }, 90_000);

  test("SIGTERM stops sources, commits, drains sinks, closes the store, and exits 0", async () => {
    const { proc, url } = kubemeta!;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    kubemeta = undefined;
    await startKubemeta();
    expect(await storeMatchesServer()).toBe(true);
  }, 60_000);
});
