/**
 * Simulated clusters for tests, benchmarks and --demo: a realistic population of
 * nodes, namespaces, workloads (Deployment → ReplicaSet → Pods, StatefulSets, a
 * kube-proxy DaemonSet, CronJob → Job), Services and EndpointSlices, and a bounded
 * churn of pod creates, modifications and deletes.
 */
import type { KubeObject } from "../sdk/model.ts";
import type { TestApiServer } from "./index.ts";
import { makePod } from "./pods.ts";
import { makeNode, nodeName } from "./nodes.ts";
import {
  makeCronJob,
  makeDaemonSet,
  makeDeployment,
  makeJob,
  makeNamespace,
  makeReplicaSet,
  makeStatefulSet,
} from "./workloads.ts";
import { makeEndpointSlice, makeService, type Endpoint } from "./networking.ts";
import type { Owner } from "./object-meta.ts";

export { makeNode, makePod };

/** Replicas per workload: 150,000 pods give ~7,500 workloads, i.e. ~30,000 other objects. */
const WORKLOAD_SIZE = 20;
const NAMESPACE_WORDS = [
  "payments",
  "checkout",
  "search",
  "catalog",
  "identity",
  "billing",
  "shipping",
  "analytics",
  "messaging",
  "platform",
];
const APP_WORDS = ["api", "web", "worker", "cache", "gateway", "auth", "indexer", "ledger", "notifier", "scheduler"];

/** mulberry32: a small seeded PRNG, so a churn run can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
let suffixCounter = 0;

/**
 * A random-looking name suffix as controllers generate ("-x2x9q"), unique within the
 * process: the counter is scrambled by multiplying with a number coprime to 27^length,
 * a bijection, so 5,000 kube-proxy pods never collide as random suffixes would.
 */
function suffix(length: number): string {
  let value = (++suffixCounter * 7919) % SUFFIX_ALPHABET.length ** length;
  let text = "";
  for (let i = 0; i < length; i++) {
    text += SUFFIX_ALPHABET[value % SUFFIX_ALPHABET.length];
    value = Math.floor(value / SUFFIX_ALPHABET.length);
  }
  return text;
}

function ownerOf(object: KubeObject): Owner {
  return { kind: object.kind!, name: object.metadata!.name!, uid: object.metadata!.uid! };
}

function endpointOf(pod: KubeObject): Endpoint {
  const status = pod.status as { podIP: string };
  const spec = pod.spec as { nodeName: string };
  return { ip: status.podIP, node: spec.nodeName, pod: { name: pod.metadata!.name!, uid: pod.metadata!.uid! } };
}

function namespaceNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const word = NAMESPACE_WORDS[i % NAMESPACE_WORDS.length]!;
    return i < NAMESPACE_WORDS.length ? word : `${word}-${Math.floor(i / NAMESPACE_WORDS.length)}`;
  });
}

/**
 * Fills a server with `nodes` nodes carrying exactly `podsPerNode` running pods each
 * (one kube-proxy pod per node, the rest from workloads of 20 replicas spread over
 * `namespaces` namespaces, default 10), plus their owners, Services and EndpointSlices.
 */
export function populate(
  server: TestApiServer,
  opts: { nodes: number; podsPerNode: number; namespaces?: number },
): void {
  // Offsets let a second call add to the cluster instead of colliding with the first.
  const firstNode = server.names("Node").length;
  const firstGroup = server.names("Service").length;
  const nodes = Array.from({ length: opts.nodes }, (_, i) => nodeName(firstNode + i));
  for (const node of nodes) server.create(makeNode(node));
  const namespaces = namespaceNames(Math.max(1, opts.namespaces ?? 10));
  for (const namespace of ["default", "kube-system", ...namespaces]) {
    if (!server.get("Namespace", null, namespace)) server.create(makeNamespace(namespace));
  }
  if (opts.podsPerNode < 1 || nodes.length === 0) return;

  const existingProxy = server.get("DaemonSet", "kube-system", "kube-proxy");
  const proxy = ownerOf(existingProxy ?? server.create(makeDaemonSet("kube-proxy", "kube-system", nodes.length)));
  for (const node of nodes) {
    server.create(
      makePod({
        name: `kube-proxy-${suffix(5)}`,
        namespace: "kube-system",
        node,
        owner: proxy,
        labels: { "k8s-app": "kube-proxy", "pod-template-generation": "1" },
      }),
    );
  }

  let placed = 0;
  let serviceIps = 0;
  let remaining = nodes.length * (opts.podsPerNode - 1);
  for (let group = firstGroup; remaining > 0; group++) {
    const size = Math.min(WORKLOAD_SIZE, remaining);
    remaining -= size;
    const namespace = namespaces[group % namespaces.length]!;
    const app = `${APP_WORDS[group % APP_WORDS.length]}-${group}`;
    const pods: KubeObject[] = [];
    const place = () => nodes[placed++ % nodes.length]!;
    if (group % 10 === 9) {
      const set = ownerOf(server.create(makeStatefulSet(app, namespace, size)));
      for (let i = 0; i < size; i++)
        pods.push(
          server.create(
            makePod({
              name: `${app}-${i}`,
              namespace,
              node: place(),
              owner: set,
              labels: { app, "apps.kubernetes.io/pod-index": String(i) },
            }),
          ),
        );
    } else {
      const deployment = ownerOf(server.create(makeDeployment(app, namespace, size)));
      const hash = suffix(9);
      const replicaSet = ownerOf(server.create(makeReplicaSet(`${app}-${hash}`, namespace, size, deployment, hash)));
      for (let i = 0; i < size; i++) {
        pods.push(
          server.create(
            makePod({
              name: `${app}-${hash}-${suffix(5)}`,
              namespace,
              node: place(),
              owner: replicaSet,
              labels: { app, "pod-template-hash": hash },
            }),
          ),
        );
      }
    }
    const n = serviceIps++;
    const service = ownerOf(server.create(makeService(app, namespace, `172.20.${(n >> 8) & 255}.${n & 255}`)));
    server.create(makeEndpointSlice(service, namespace, pods.map(endpointOf)));
  }
  for (const namespace of namespaces) {
    if (server.get("CronJob", namespace, `report-${namespace}`)) continue;
    const cronJob = ownerOf(server.create(makeCronJob(`report-${namespace}`, namespace)));
    // The CronJob controller names a Job after its scheduled time in minutes since the epoch.
    server.create(makeJob(`report-${namespace}-${Math.floor(Date.now() / 60_000)}`, namespace, cronJob));
  }
}

type PodRef = { namespace: string; name: string };

/**
 * Changes pods at `perSecond` (creates, deletes, and modifications of labels, of status
 * (readiness, restarts) and of fields kubemeta ignores (managedFields times)), keeping
 * the pod count within ±10% of where it started.
 */
export function startChurn(
  server: TestApiServer,
  opts: { perSecond: number; seed?: number },
): { stop(): void; changes(): number } {
  const random = seededRandom(opts.seed ?? 1);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const pods: PodRef[] = server
    .names("Pod")
    .map(({ namespace, name }) => ({ namespace: namespace ?? "default", name }));
  const nodes = server.names("Node").map(({ name }) => name);
  const namespaces = [...new Set(pods.map((pod) => pod.namespace))];
  if (namespaces.length === 0) namespaces.push("default");
  const floor = Math.floor(pods.length * 0.9);
  const ceiling = Math.ceil(pods.length * 1.1) + 10;
  let changes = 0;
  let created = 0;

  const modify = (pod: KubeObject) => {
    const choice = random();
    const metadata = pod.metadata!;
    if (choice < 1 / 3) {
      metadata.labels = {
        ...(metadata.labels as Record<string, string>),
        "churn.kubemeta.dev/generation": String(changes),
      };
    } else if (choice < 2 / 3) {
      const status = pod.status as {
        conditions?: Array<{ type: string; status: string }>;
        containerStatuses?: Array<{ ready: boolean; restartCount: number }>;
      };
      const ready = status.conditions?.find((condition) => condition.type === "Ready");
      if (ready) ready.status = ready.status === "True" ? "False" : "True";
      for (const container of status.containerStatuses ?? []) {
        container.ready = ready?.status === "True";
        container.restartCount++;
      }
    } else {
      for (const entry of (metadata.managedFields as Array<{ time: string }> | undefined) ?? [])
        entry.time = `${new Date().toISOString().slice(0, 19)}Z`;
    }
  };

  const step = () => {
    const grow = pods.length === 0 || pods.length < floor || (pods.length < ceiling && random() < 0.2);
    if (grow) {
      const namespace = pick(namespaces);
      // A churn started again on the same server (same seed) would make a name the first one's pod still has.
      let name: string;
      do name = `churn-${(opts.seed ?? 1).toString(36)}-${(created++).toString(36)}`;
      while (server.get("Pod", namespace, name));
      server.create(
        makePod({ name, namespace, node: nodes.length > 0 ? pick(nodes) : undefined, labels: { app: "churn" } }),
      );
      pods.push({ namespace, name });
      return;
    }
    const index = Math.floor(random() * pods.length);
    const pod = pods[index]!;
    const shrink = pods.length > floor && random() < 0.25;
    const exists = shrink ? server.delete("Pod", pod.namespace, pod.name) !== undefined : tryPatch(pod);
    if (shrink || !exists) {
      pods[index] = pods[pods.length - 1]!;
      pods.pop();
    }
  };
  /** False when the pod is gone (a test deleted it). */
  const tryPatch = (pod: PodRef): boolean => {
    try {
      server.patch("Pod", pod.namespace, pod.name, modify);
      return true;
    } catch (error) {
      if (server.get("Pod", pod.namespace, pod.name)) throw error;
      return false;
    }
  };

  const started = performance.now();
  const maxPerTick = Math.max(1, Math.ceil(opts.perSecond / 10));
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * opts.perSecond) - changes;
    for (let i = 0; i < Math.min(due, maxPerTick); i++) {
      step();
      changes++;
    }
  }, 20);
  return { stop: () => clearInterval(timer), changes: () => changes };
}
