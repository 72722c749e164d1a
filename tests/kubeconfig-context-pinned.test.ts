/**
 * A kubeconfig's current context switched while kubemeta runs (`kubectl config use-context`, kubectx): kubemeta keeps
 * the cluster it started with, as a running `kubectl get -w` keeps its own, when a 401 makes it read the kubeconfig
 * again and when an `ha` term starts its sources anew. `bun run main.ts` with KUBECONFIG, against two TLS test API
 * servers.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type Lease, microTime } from "../kube/lease.ts";
import { loadForProcess } from "../kube/load.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { waitFor } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { clusterOf, kubeconfig, kubeconfigSuite, withEnv, write } from "./kubeconfig-fixtures.ts";
import { seesNewPod, startKubemeta } from "./kubeconfig-process.ts";

const suite = kubeconfigSuite();
let other: TestApiServer;
beforeAll(async () => {
  other = await startTestApiServer();
});
afterAll(() => other.stop());

/** Two clusters, each with its own user, and `current` the current context. */
const twoClusters = (current: string, token: string) =>
  kubeconfig({
    clusters: { first: clusterOf(suite.server), second: clusterOf(other) },
    users: { "first-user": { token }, "second-user": { token: other.token } },
    contexts: {
      first: { cluster: "first", user: "first-user" },
      second: { cluster: "second", user: "second-user" },
    },
    current,
  });

test("a 401 after the current context was switched: the credentials read again are the first context's", async () => {
  const file = await write(join(suite.dir, "switched", "config"), twoClusters("first", suite.server.token));
  const run = await startKubemeta(join(suite.dir, "runs", "switched"), { KUBECONFIG: file });
  try {
    await waitFor(async () => (await fetch(`${run.url}/readyz`)).ok, 15_000, "kubemeta to be ready");
    // The user switches context, then the first cluster's token is replaced (revoked, renewed in the file).
    await write(file, twoClusters("second", "renewed-token-0123456789abcdef"));
    suite.server.acceptTokens(["renewed-token-0123456789abcdef"]);
    suite.server.dropWatches();
    other.resetRequests();
    // Was: the second cluster's objects in place of the first's, in the same store (each of the first's deleted).
    expect(await seesNewPod(suite.server, run.url, "still-first", "default")).toBe(true);
    expect(other.requests()).toEqual({});
  } finally {
    await run.stop();
    suite.server.acceptTokens([suite.server.token]);
  }
});

test("with ha, a Lease lost and won again after the context was switched: the new term watches the first", async () => {
  const file = await write(join(suite.dir, "ha", "config"), twoClusters("first", suite.server.token));
  const store = startHranaServer({ path: join(suite.dir, "ha", "store.db") });
  const cwd = join(suite.dir, "runs", "ha");
  await write(
    join(cwd, "kubemeta.yaml"),
    [
      `store: { type: libsql, url: "${store.url}" }`,
      "ha: { enabled: true, identity: r0, lease: { name: kubemeta, namespace: default }, leaseDuration: 3s,",
      "  renewDeadline: 2s, retryPeriod: 500ms }",
      "sources: [{ type: kubernetes, resources: [pods] }]",
      "sinks: [{ type: sse }]",
    ].join("\n"),
  );
  const run = await startKubemeta(cwd, { KUBECONFIG: file });
  try {
    await waitFor(async () => (await fetch(`${run.url}/readyz`)).ok, 15_000, "kubemeta to lead and be ready");
    await write(file, twoClusters("second", suite.server.token));
    other.resetRequests();
    // Another holder for 2 s: the replica steps down, then takes the Lease again once it expires.
    suite.server.patch("Lease", "default", "kubemeta", (lease) => {
      const { spec } = lease as unknown as Lease;
      (lease as unknown as Lease).spec = { ...spec, holderIdentity: "intruder", renewTime: microTime() };
      (lease as unknown as Lease).spec.leaseDurationSeconds = 2;
    });
    await run.stdout.waitFor(/"msg":"lost the Lease; no longer leading"/, 5_000);
    const terms = () => run.stdout.lines("acquired the Lease; leading").length;
    await waitFor(() => terms() === 2, 10_000, "the Lease taken again");
    // Was: the new term's source listed and watched the second cluster into the same store.
    expect(await seesNewPod(suite.server, run.url, "new-term", "default")).toBe(true);
    expect(other.requests()).toEqual({});
  } finally {
    await run.stop();
    await store.stop();
  }
});

test("the first load's context is kept for the same files, however named; deleted since, loads fail", async () => {
  const file = await write(join(suite.dir, "process", "config"), twoClusters("first", suite.server.token));
  expect(loadForProcess({ kubeconfig: file }).kc.getCurrentContext()).toBe("first");
  await write(file, twoClusters("second", suite.server.token));
  const again = loadForProcess({ kubeconfig: file });
  expect([again.kc.getCurrentContext(), again.reload().getCurrentContext()]).toEqual(["first", "first"]);
  expect(withEnv({ KUBECONFIG: file }, () => loadForProcess({}).kc.getCurrentContext())).toBe("first");
  // A context the config names is its own.
  expect(loadForProcess({ kubeconfig: file, context: "second" }).kc.getCurrentContext()).toBe("second");
  const secondOnly = kubeconfig({
    clusters: { second: clusterOf(other) },
    users: { "second-user": { token: other.token } },
    contexts: { second: { cluster: "second", user: "second-user" } },
    current: "second",
  });
  await write(file, secondOnly);
  expect(() => loadForProcess({ kubeconfig: file })).toThrow(
    `kubeconfig ${file} has no context "first", its current one when kubemeta started (contexts: second)`,
  );
});
