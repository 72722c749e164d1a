/** Simulated clusters (shapes, population, churn), the CLI, and a large cluster streamed whole over TLS. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { KubeObject } from "../sdk/model.ts";
import { apiFetch, keysOf, listJson, realFixture, WatchReader } from "./apiserver-client.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { makePod, populate, startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";

let server: TestApiServer;
beforeAll(async () => {
  server = await startTestApiServer();
});
afterAll(() => server.stop());

describe("payload shapes match the real captures", () => {
  test("PodList, Pod, Deployment list, discovery", async () => {
    populate(server, { nodes: 3, podsPerNode: 4, namespaces: 2 });
    const real = await realFixture<{ metadata: object; items: Array<Record<string, { [k: string]: unknown }>> }>(
      "kind-v1.36.2/core.v1.PodList.json",
    );
    const ours = (await listJson(server, "/api/v1/namespaces/kube-system/pods")).body;
    expect(keysOf(ours)).toEqual(keysOf(real));
    expect(keysOf(ours.metadata)).toEqual(keysOf(real.metadata));
    const [item] = ours.items as unknown as Array<Record<string, Record<string, unknown>>>;
    expect(keysOf(item)).toEqual(keysOf(real.items[0])); // no kind/apiVersion on items
    expect(keysOf(item!.status)).toEqual(
      expect.arrayContaining(["phase", "conditions", "hostIP", "podIP", "podIPs", "containerStatuses", "qosClass"]),
    );
    const order = keysOf(real.items[0]!.metadata).filter((key) => key in item!.metadata!);
    expect(keysOf(item!.metadata).filter((key) => order.includes(key))).toEqual(order);

    const paged = (await listJson(server, "/api/v1/pods?limit=2")).body;
    expect(keysOf(paged.metadata)).toEqual(
      expect.arrayContaining(
        keysOf(
          (await realFixture<{ metadata: object }>("openshift-3.11-2018/core.v1.PodList.page1.json")).metadata,
        ).filter((k) => k !== "selfLink"),
      ),
    );

    const deployments = (await listJson(server, "/apis/apps/v1/deployments")).body;
    const realDeployments = await realFixture<{ items: object[] }>("kind-v1.36.2/apps.v1.DeploymentList.json");
    expect(keysOf(deployments)).toEqual(keysOf(realDeployments));
    expect(keysOf(deployments.items[0])).toEqual(keysOf(realDeployments.items[0]));

    const groups = (await (await apiFetch(server, "/apis")).json()) as { groups: object[] };
    const realGroups = await realFixture<{ groups: object[] }>("kind-v1.36.2/APIGroupList.json");
    expect(keysOf(groups)).toEqual(keysOf(realGroups));
    expect(keysOf(groups.groups[0])).toEqual(keysOf(realGroups.groups[0]));
    expect((await apiFetch(server, "/version")).status).toBe(200);
  });

  test("makePod is a real-size pod (6–9 KB, as the kind captures) with what kubemeta must strip", () => {
    const made = makePod({
      name: "web-1",
      namespace: "payments",
      node: "ip-10-0-1-23.eu-west-1.compute.internal",
      owner: { kind: "ReplicaSet", name: "web-7d9f8c6b5", uid: "u" },
    });
    const size = JSON.stringify(made).length;
    expect(size).toBeGreaterThan(6000);
    expect(size).toBeLessThan(9500);
    const metadata = made.metadata as Record<string, Record<string, unknown>>;
    expect(metadata.annotations!["kubectl.kubernetes.io/last-applied-configuration"]).toBeString();
    expect(metadata.managedFields).toBeArray();
    expect(JSON.stringify(made.spec)).toContain('"env":[{"name":"DATABASE_URL","value":');
    expect(made.status).toMatchObject({ phase: "Running", hostIP: "10.0.1.23", qosClass: "Burstable" });
  });
});

describe("population and churn", () => {
  test("populate: exact pods per node, owner chains, endpoint slices pointing at pods", async () => {
    const cluster = await startTestApiServer();
    try {
      populate(cluster, { nodes: 2, podsPerNode: 6, namespaces: 3 });
      populate(cluster, { nodes: 2, podsPerNode: 6, namespaces: 3 }); // adds to the cluster
      const nodes = cluster.list("Node").map((n) => n.metadata!.name!);
      expect(nodes).toHaveLength(4);
      expect(nodes.every((name) => /^ip-10-0-\d+-\d+\.eu-west-1\.compute\.internal$/.test(name))).toBe(true);
      const pods = cluster.list("Pod") as Array<KubeObject & { spec: { nodeName: string } }>;
      for (const node of nodes) expect(pods.filter((p) => p.spec.nodeName === node)).toHaveLength(6);
      const uids = new Map(
        ["ReplicaSet", "StatefulSet", "DaemonSet", "Deployment"].flatMap((kind) =>
          cluster.list(kind).map((o) => [o.metadata!.uid!, o] as const),
        ),
      );
      for (const p of pods) {
        const owner = uids.get((p.metadata!.ownerReferences as Array<{ uid: string }>)[0]!.uid);
        expect(owner).toBeDefined();
        if (owner!.kind === "ReplicaSet")
          expect(uids.get((owner!.metadata!.ownerReferences as Array<{ uid: string }>)[0]!.uid)?.kind).toBe(
            "Deployment",
          );
      }
      const podUids = new Set(pods.map((p) => p.metadata!.uid));
      const slices = cluster.list("EndpointSlice") as Array<
        KubeObject & { endpoints: Array<{ targetRef: { uid: string } }> }
      >;
      expect(slices.length).toBe(cluster.list("Service").length);
      expect(slices.every((s) => s.endpoints.every((e) => podUids.has(e.targetRef.uid)))).toBe(true);
    } finally {
      await cluster.stop();
    }
  });

  test("startChurn creates, modifies and deletes pods at the asked rate, within bounds", async () => {
    const cluster = await startTestApiServer();
    try {
      populate(cluster, { nodes: 2, podsPerNode: 10 });
      const initial = cluster.names("Pod").length;
      const watch = await WatchReader.open(
        cluster,
        `/api/v1/pods?watch=1&resourceVersion=${cluster.resourceVersion()}`,
      );
      const churn = startChurn(cluster, { perSecond: 500, seed: 7 });
      const seen = new Set<string>();
      await watch.until((e) => {
        seen.add(e.type);
        return seen.size === 3;
      }, 10_000);
      churn.stop();
      expect(churn.changes()).toBeGreaterThan(0);
      const count = cluster.names("Pod").length;
      expect(count).toBeGreaterThanOrEqual(Math.floor(initial * 0.9));
      expect(count).toBeLessThanOrEqual(Math.ceil(initial * 1.1) + 10);
      await watch.close();
    } finally {
      await cluster.stop();
    }
  });

  test("a churn on a server with a pod of the name it would make first (an earlier churn) makes another", async () => {
    const cluster = await startTestApiServer();
    try {
      populate(cluster, { nodes: 1, podsPerNode: 0 });
      // What an earlier churn of the same seed left: its first pod.
      cluster.create(makePod({ name: "churn-1-0", namespace: "default" }));
      const churn = startChurn(cluster, { perSecond: 500, seed: 1 });
      await waitFor(() => cluster.names("Pod").some(({ name }) => name !== "churn-1-0"), 5_000, "a pod of its own");
      churn.stop();
    } finally {
      await cluster.stop();
    }
  });
});

test("cli.ts serves a populated cluster from its own process, says where, and cleans up on SIGTERM", async () => {
  const child = Bun.spawn(
    [
      process.execPath,
      new URL("../simulator/cli.ts", import.meta.url).pathname,
      "--nodes",
      "2",
      "--pods-per-node",
      "3",
      "--no-tls",
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  let kubeconfig = "";
  try {
    const chunks = child.stdout[Symbol.asyncIterator]();
    let line = "";
    while (!line.includes("\n")) line += new TextDecoder().decode((await chunks.next()).value);
    const started = JSON.parse(line) as { url: string; token: string; kubeconfig: string };
    kubeconfig = started.kubeconfig;
    expect(await Bun.file(kubeconfig).text()).toContain(`server: ${started.url}`);
    const pods = (await (
      await fetch(`${started.url}/api/v1/pods`, { headers: { authorization: `Bearer ${started.token}` } })
    ).json()) as { items: unknown[] };
    expect(pods.items).toHaveLength(6);
  } finally {
    child.kill();
    await child.exited;
  }
  expect(await Bun.file(kubeconfig).exists()).toBe(false);
});

describe("a large cluster", () => {
  // How fast it streams is the benchmarks' to say (bench/reflector.ts reads the simulator's cluster): here, whole.
  // Each read has its own deadline, so a stuck one says which it was and how far it got.
  test("streams 3,000 real-size pods whole over TLS, LIST and streaming list alike", async () => {
    const big = await startTestApiServer();
    try {
      populate(big, { nodes: 150, podsPerNode: 20 });
      const names = big
        .names("Pod")
        .map(({ namespace, name }) => `${namespace}/${name}`)
        .sort();
      expect(names).toHaveLength(3_000);
      const namesOf = (pods: KubeObject[]) =>
        pods.map((pod) => `${pod.metadata!.namespace}/${pod.metadata!.name}`).sort();

      const list = await (await apiFetch(big, "/api/v1/pods", "token", AbortSignal.timeout(20_000))).text();
      expect(list.length).toBeGreaterThan(3_000 * 4000);
      expect(namesOf((JSON.parse(list) as { items: KubeObject[] }).items)).toEqual(names);

      const query = "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
      const watch = await WatchReader.open(big, `/api/v1/pods?${query}`);
      const events = await watch.until((event) => event.type === "BOOKMARK", 20_000);
      await watch.close();
      expect(events.at(-1)!.object.metadata!.annotations).toEqual({ "k8s.io/initial-events-end": "true" });
      const added = events.slice(0, -1);
      expect(added.filter((event) => event.type !== "ADDED")).toEqual([]);
      expect(namesOf(added.map((event) => event.object))).toEqual(names);
    } finally {
      await big.stop();
    }
  }, 60_000);
});

test("cli.ts --help says its options; a bad one is one line and exit 2", async () => {
  const run = async (...args: string[]) => {
    const child = Bun.spawn([process.execPath, new URL("../simulator/cli.ts", import.meta.url).pathname, ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    return { stdout, stderr, code };
  };
  const help = await run("--help");
  expect(help).toMatchObject({ code: 0, stderr: "" });
  expect(help.stdout).toContain("--pods-per-node");
  expect(await run("--bogus")).toEqual({
    stdout: "",
    stderr: "simulator: Unknown option '--bogus' (see --help)\n",
    code: 2,
  });
});
