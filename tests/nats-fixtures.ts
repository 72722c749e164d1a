/**
 * What the NATS tests share: a host with the NATS sink pointed at a test nats-server,
 * raw cluster objects, churn, and the comparison of a follower with the store.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import type { ChangeSink } from "../sdk/contract.ts";
import { ALL } from "../protocol/streams.ts";
import type { KubeObject } from "../sdk/model.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "../host/metrics.ts";
import { createLogger, silentLogger } from "../host/logger.ts";
import type { ConnectionTelemetry } from "../plugins/sinks/nats/connection.ts";
import type { Follower } from "./nats-consumer.ts";
import type { Logged } from "./plugins-fixtures.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";
import { startNatsServer, type NatsServerOptions, type TestNatsServer } from "./nats-server.ts";

/**
 * Test timeout: these take under a second alone; the whole suite on 2 cores may slow them down, and their waits say
 * what is late.
 */
export const SLOW_MS = 30_000;

/** A cluster name that is not a NATS token as it is: the default prefix encodes it. */
export const CLUSTER = "test.eu-west-1";
export const PREFIX = "kubemeta.test_eu-west-1";

/** Node names as clouds make them, dots included. */
export function nodeNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `ip-10-0-${i >> 8}-${i & 255}.eu-west-1.compute.internal`);
}

export function rawNode(name: string, ready = "True"): KubeObject {
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: { name, uid: `node-${name}`, resourceVersion: "1", labels: { "kubernetes.io/hostname": name } },
    status: {
      addresses: [{ type: "InternalIP", address: "10.0.0.1" }],
      conditions: [{ type: "Ready", status: ready }],
    },
  };
}

export function rawNamespace(name: string): KubeObject {
  return {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: { name, uid: `ns-${name}`, resourceVersion: "1" },
    status: { phase: "Active" },
  };
}

export function rawService(name: string, port = 80): KubeObject {
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: { name, namespace: "default", uid: `svc-${name}`, resourceVersion: "1" },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.10", ports: [{ port, protocol: "TCP" }], selector: { app: name } },
  };
}

/**
 * Sink config entry with fast reconnects and retries, for tests: an outage here lasts
 * milliseconds, so a retry must not wait out the reconnect (the sink would then come
 * back later than its consumers).
 */
/** What the NATS sink's connection (openConnection) reports to, on metrics of its own and a silent log. */
export function connectionTelemetry(): ConnectionTelemetry {
  const metrics = createMetrics();
  return {
    logger: silentLogger,
    labels: { sink: "nats" },
    connected: metrics.gauge("connected", ""),
    reconnects: metrics.counter("reconnects", ""),
    connectFailures: metrics.counter("connect_failures", ""),
    publishRefusals: metrics.counter("publish_refusals", ""),
  };
}

export function natsSink(server: TestNatsServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "nats",
    servers: [server.url],
    reconnect: { initial: "20ms", max: "200ms" },
    retry: { initial: "5ms", max: "50ms" },
    cursorSaveInterval: "50ms",
    ...extra,
  };
}

export async function startNatsHost(
  server: TestNatsServer,
  options: { dir?: string; sink?: Record<string, unknown>; retention?: Record<string, unknown>; logger?: Logger } = {},
): Promise<TestHost> {
  return startTestHost({
    cluster: CLUSTER,
    dir: options.dir,
    retention: options.retention,
    logger: options.logger,
    sinks: [natsSink(server, options.sink)],
  });
}

/**
 * A server, and a host whose sink reaches it through a TCP proxy (to hold or cut the sink's link alone), its log lines
 * kept in `logged`; each stopped by `cleanups`.
 */
export async function startProxiedNatsHost(
  cleanups: (() => Promise<unknown>)[],
  retention?: Record<string, unknown>,
): Promise<{ server: TestNatsServer; proxy: TcpProxy; th: TestHost; logged: Logged[] }> {
  const server = await startNatsServer();
  cleanups.push(() => server.destroy());
  const proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.port });
  cleanups.push(async () => proxy.stop());
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const th = await startNatsHost(server, {
    logger,
    retention,
    sink: { prefix: PREFIX, servers: [`nats://127.0.0.1:${proxy.port}`] },
  });
  cleanups.push(() => th.destroy());
  return { server, proxy, th, logged };
}

/**
 * Sends a replay `request` whose reply holds the sink's link (`proxy`) from its first chunk on, and returns once a MiB
 * more of it has come: the sink then waits on a flush the server never confirms. The reply's error chunks are pushed
 * to the list returned as they come.
 */
export async function replayHeldAfterFirstChunk(
  nc: NatsConnection,
  proxy: TcpProxy,
  request: Record<string, unknown>,
): Promise<string[]> {
  let afterHold = -1;
  const errors: string[] = [];
  const inbox = createInbox();
  nc.subscribe(inbox, {
    callback: (_, msg) => {
      const { error } = msg.json<{ error?: string }>();
      if (error !== undefined) errors.push(error);
      if (afterHold < 0) {
        proxy.hold();
        afterHold = 0;
      } else afterHold += msg.data.length;
    },
  });
  nc.publish(`${PREFIX}.replay`, JSON.stringify(request), { reply: inbox });
  await waitFor(() => afterHold > (1 << 20) + (64 << 10), 10_000, "a MiB of the reply sent after the hold");
  return errors;
}

export interface NatsSuite {
  server: TestNatsServer;
  th: TestHost;
  /** A client connection of the test's own. */
  nc: NatsConnection;
}

/**
 * One server, one host with the sink and one client for a whole test file (started in beforeAll, destroyed in
 * afterAll).
 */
export function natsSuite(
  serverOptions: NatsServerOptions = {},
  hostOptions: Parameters<typeof startNatsHost>[1] = {},
): NatsSuite {
  const suite = {} as NatsSuite;
  beforeAll(async () => {
    suite.server = await startNatsServer(serverOptions);
    suite.th = await startNatsHost(suite.server, hostOptions);
    suite.nc = await client(suite.server);
  }, SLOW_MS);
  afterAll(async () => {
    await suite.nc?.close();
    await suite.th?.destroy();
    await suite.server?.destroy();
  });
  return suite;
}

export async function client(server: TestNatsServer, extra: Record<string, unknown> = {}): Promise<NatsConnection> {
  return connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50, ...extra });
}

/**
 * One round of churn on every node: a new pod, a change to an older one, a deletion of an
 * even older one, a Node status flip, and some shared objects. Deterministic in `round`.
 */
export async function churn(changes: ChangeSink, nodes: string[], round: number): Promise<void> {
  for (const [i, node] of nodes.entries()) {
    await changes.apply("pods", "ADDED", rawPod(`web-${i}-${round}`, { node, rv: String(round) }));
    if (round >= 1)
      await changes.apply(
        "pods",
        "MODIFIED",
        rawPod(`web-${i}-${round - 1}`, { node, phase: "Succeeded", rv: String(round) }),
      );
    if (round >= 2)
      await changes.apply(
        "pods",
        "DELETED",
        rawPod(`web-${i}-${round - 2}`, { node, phase: "Succeeded", rv: String(round) }),
      );
    if (i % 10 === round % 10) await changes.apply("nodes", "MODIFIED", rawNode(node, round % 2 ? "False" : "True"));
  }
  await changes.apply("services", "ADDED", rawService(`svc-${round}`));
  await changes.apply("pods", "ADDED", rawPod(`pending-${round}`));
}

/** The store's current objects of a stream, uid → version. */
export async function truth(th: TestHost, stream: string): Promise<Map<string, number>> {
  const { objects } = await th.host.log.snapshot(stream === ALL ? {} : { stream });
  return new Map(objects.map((o) => [o.uid, o.version]));
}

/** True once the follower holds exactly what the store holds for its stream. */
export async function converged(th: TestHost, follower: Follower, stream: string): Promise<boolean> {
  await follower.settled();
  const expected = await truth(th, stream);
  const actual = follower.state();
  if (expected.size !== actual.size) return false;
  for (const [uid, version] of expected) if (actual.get(uid) !== version) return false;
  return true;
}

export async function expectConverged(th: TestHost, follower: Follower, stream: string): Promise<void> {
  await follower.settled();
  expect(follower.state()).toEqual(await truth(th, stream));
}
