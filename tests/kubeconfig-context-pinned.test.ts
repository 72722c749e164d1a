/**
 * A kubeconfig's current context switched while kubemeta runs (`kubectl config use-context`, kubectx): kubemeta keeps
 * the cluster it started with, as a running `kubectl get -w` keeps its own, when a 401 makes it read the kubeconfig
 * again. `bun run main.ts` with KUBECONFIG, against two TLS test API servers.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { waitFor } from "../testing/index.ts";
import { clusterOf, kubeconfig, kubeconfigSuite, write } from "./kubeconfig-fixtures.ts";
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
