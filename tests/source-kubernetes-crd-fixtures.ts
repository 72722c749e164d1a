/**
 * Test fixtures for custom resources: the FooBar CRD of the recordings, its objects, and a test API server with the
 * kubernetes source entry of a host config, plus what a test asks a host (readiness, stored names, updates).
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Envelope } from "../protocol/envelope.ts";
import type { KubeObject } from "../sdk/model.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { scratchDir } from "./source-kubernetes-recorder.ts";

export const GROUP = "k8s-openapi-tests-custom-resource-definition.com";
// The CRD of the kind v1.36.2 recordings (tests/fixtures/k8s/real/SOURCES.md).
export const FOOBARS = { group: GROUP, version: "v1", resource: "foobars", kind: "FooBar", namespaced: true };
export const GVR = `${GROUP}/v1/foobars`;
export const NOT_SERVED = `waiting for ${GVR} (not served by the API server: is its CRD installed?)`;
/** Discovery looks again after 100–200 ms, then 200–400 ms: fast tests, and still a bounded rate. */
export const FAST_DISCOVERY = { discovery: { initial: "200ms", max: "400ms" } };

export function fooBar(name: string, prop1 = "value1"): KubeObject {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: "FooBar",
    metadata: { name, namespace: "default" },
    spec: { prop1, prop2: [true, false], prop4: 6, prop5: "7" },
  };
}

export const discoveries = (server: TestApiServer) => server.requests()[`discovery /apis/${GROUP}/v1`] ?? 0;

/** The kubernetes source entry of a host config watching `resources`. */
export type SourceEntry = (resources: string[]) => object;

/** A test API server with a token kubeconfig, and the kubernetes source entry of a host config for it. */
export async function withServer(body: (server: TestApiServer, source: SourceEntry) => Promise<void>) {
  const server = await startTestApiServer({ bookmarkIntervalMs: 100 });
  const scratch = await scratchDir();
  const kubeconfig = join(scratch.dir, "kubeconfig");
  await server.writeKubeconfig(kubeconfig, "token");
  const source: SourceEntry = (resources) => ({
    type: "kubernetes",
    kubeconfig,
    resources,
    backoff: { initial: "20ms", max: "200ms" },
    requestBudget: { qps: 100, burst: 100 },
    ...FAST_DISCOVERY,
  });
  try {
    await body(server, source);
  } finally {
    await server.stop();
    await scratch.remove();
  }
}

export async function readiness(host: TestHost): Promise<{ status: number; waiting: string[] }> {
  const response = await fetch(`${host.url}/readyz`);
  return { status: response.status, waiting: ((await response.json()) as { waiting: string[] }).waiting };
}

/** The names of the `kind` updates in the log: what was committed, before the sources synced too. */
export async function loggedNames(host: TestHost, kind: string): Promise<string[]> {
  const { items } = (await (await fetch(`${host.url}/v1/updates?stream=all`)).json()) as { items: Envelope[] };
  return items.filter((item) => item.kind === kind).map((item) => item.name);
}

/** The names of the current `kind` objects (/v1/objects: once the sources of a new store synced). */
export async function storedNames(host: TestHost, kind: string): Promise<string[]> {
  const { items } = (await (await fetch(`${host.url}/v1/objects?kind=${kind}`)).json()) as { items: Envelope[] };
  return items.map((item) => item.name).sort();
}

/**
 * The updates after `version`, once the log /v1/updates reads has every commit the store holds: /v1/objects (what
 * storedNames reads) may show a commit before the log is told of it.
 */
export async function updatesAfter(host: TestHost, version: number): Promise<string[]> {
  const stored = ((await (await fetch(`${host.url}/v1/objects`)).json()) as { version: number }).version;
  await waitFor(() => host.host.log.head() >= stored, 5000, "the log to reach the store's head");
  const response = await fetch(`${host.url}/v1/updates?stream=all&since=${host.host.epoch}:${version}`);
  const { items } = (await response.json()) as { items: Envelope[] };
  return items.map((u) => `${u.type} ${u.kind} ${u.name}`);
}

export const ready = (host: TestHost) => waitFor(async () => (await readiness(host)).status === 200, 5000, "ready");

/**
 * A test API server serving the FooBars fb1 and fb2, and `start`, which starts kubemeta on one store watching
 * `resources` (and the source's other keys given). Every kubemeta is stopped and the store removed at the end.
 */
export function withFooBarHosts(
  body: (
    server: TestApiServer,
    start: (resources: string[], keys?: Record<string, unknown>) => Promise<TestHost>,
  ) => Promise<void>,
): Promise<void> {
  return withServer(async (server, source) => {
    server.installResource(FOOBARS);
    for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
    const dir = await tempDir();
    const hosts: TestHost[] = [];
    const start = async (resources: string[], keys: Record<string, unknown> = {}) => {
      const host = await startTestHost({ dir, extra: { sources: [{ ...source(resources), ...keys }] } });
      hosts.push(host);
      return host;
    };
    try {
      await body(server, start);
    } finally {
      for (const host of hosts) await host.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
