/**
 * Checks of a kubemeta against the simulated API server's truth, shared by the fault tests (one process on a file)
 * and the HA tests and bench (replicas on a remote store): its /v1/objects against the API server's objects, the
 * store's log and state read directly, one series of its /metrics. No bun:test here: benches use it too.
 */
import libsql from "../plugins/stores/libsql.ts";
import type { Store } from "../sdk/contract.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import type { Envelope } from "../protocol/envelope.ts";
import type { TestApiServer } from "../simulator/index.ts";

/** What the checked kubemetas watch (resources) and what the checks compare (their kinds). */
const KINDS = ["Pod", "Node", "Namespace", "Service", "EndpointSlice", "ReplicaSet", "Deployment"];
export const RESOURCES = ["pods", "nodes", "namespaces", "services", "endpointslices", "replicasets", "deployments"];

export async function freePort(): Promise<number> {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

/** The store a kubemeta writes: a `file:` URL, or a remote server with its token. */
export interface StoreAddress {
  url: string;
  authToken?: string;
}

/** The value of one series on the /metrics of the kubemeta at `url` (labels matched as a subset), if any. */
export async function metric(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const has = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => has[key] === value)) return Number(match[3]);
  }
  return undefined;
}

export function clusterChecks(server: TestApiServer, address: StoreAddress) {
  async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
    const store = libsql.create({ url: address.url, authToken: address.authToken } as never, {
      name: "reader",
      cluster: "faults",
      logger: silentLogger,
      metrics: createMetrics(),
    });
    await store.start();
    try {
      return await work(store);
    } finally {
      await store.stop();
    }
  }

  /** `<kind>/<uid>` → digest of the slim object, of every object the API server holds of the checked kinds. */
  function truth(): Map<string, number> {
    const expected = new Map<string, number>();
    for (const kind of KINDS)
      for (const object of server.list(kind))
        expected.set(`${kind}/${object.metadata!.uid}`, digest(slim(kind, object as KubeObject)));
    return expected;
  }

  /** The API server's objects, slimmed, against the /v1/objects of the kubemeta at `url`: true when it caught up. */
  async function matchesTruth(url: string): Promise<boolean> {
    const expected = truth();
    const response = await fetch(`${url}/v1/objects`).catch(() => undefined);
    if (!response?.ok) return false;
    const { items } = (await response.json()) as { items: Envelope[] };
    if (items.length !== expected.size) return false;
    return items.every((o) => expected.get(`${o.kind}/${o.uid}`) === digest(o.object as never));
  }

  async function allUpdates(): Promise<Update[]> {
    return withStore((store) => store.readUpdates({ stream: "all", after: 0, limit: 10_000_000 }));
  }

  /** uid → version of the store's current objects (of one stream's, given one but `all`). */
  async function storeState(stream = "all"): Promise<Map<string, number>> {
    const { objects } = await withStore((store) => store.snapshot(stream === "all" ? {} : { stream }));
    return new Map(objects.map((o) => [o.uid, o.version]));
  }

  return { withStore, truth, matchesTruth, allUpdates, storeState, metric };
}
