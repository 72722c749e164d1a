/**
 * NATS goes away during churn: the store keeps committing, the sink publishes from its
 * cursor once NATS is back, and every subscriber converges with whole prev chains. The
 * cursor is durable: a restarted kubemeta goes on where it stopped.
 */
import { afterEach, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { encodeNodeToken } from "../protocol/node-token.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { sinkCaughtUp, waitFor, type TestHost } from "../testing/index.ts";
import { Follower } from "./nats-consumer.ts";
import {
  churn,
  client,
  connectionTelemetry,
  converged,
  expectConverged,
  nodeNames,
  PREFIX,
  rawNode,
  startNatsHost,
  SLOW_MS,
} from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";
import { openConnection } from "../plugins/sinks/nats/connection.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ server: TestNatsServer; th: TestHost; connections: NatsConnection[] }> {
  const server = await startNatsServer();
  cleanups.push(() => server.destroy());
  const th = await startNatsHost(server);
  cleanups.push(() => th.destroy());
  const connections = [await client(server), await client(server)];
  cleanups.push(() => Promise.all(connections.map((c) => c.close())));
  return { server, th, connections };
}

function followersFor(nodes: string[], connections: NatsConnection[]): Map<string, Follower> {
  const followers = new Map<string, Follower>();
  nodes.forEach((node, i) => {
    const stream = `node/${node}`;
    followers.set(
      stream,
      new Follower({
        nc: connections[i % connections.length]!,
        prefix: PREFIX,
        stream,
        subject: `${PREFIX}.node.${encodeNodeToken(node)}`,
      }),
    );
  });
  followers.set(
    SHARED,
    new Follower({ nc: connections[0]!, prefix: PREFIX, stream: SHARED, subject: `${PREFIX}.shared` }),
  );
  followers.set(ALL, new Follower({ nc: connections[1]!, prefix: PREFIX, stream: ALL, subject: `${PREFIX}.all` }));
  return followers;
}

/** Every update of the stream after the follower's initial reset was applied, once, in order. */
async function expectWholeChain(th: TestHost, follower: Follower, stream: string, after: number): Promise<void> {
  const updates = await th.host.log.read({ stream, after, limit: 1_000_000 });
  expect(follower.chain).toEqual(updates.map((u) => u.version));
}

test(
  "nats-server killed and restarted during churn: " +
    "the store keeps committing, every subscriber converges with whole chains",
  async () => {
    const { server, th, connections } = await setup();
    const nodes = nodeNames(20);
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    await th.changes.flush();
    const followers = followersFor(nodes, connections);
    await Promise.all([...followers.values()].map((f) => f.start()));
    const startedAt = new Map([...followers].map(([stream, f]) => [stream, f.position]));

    await churn(th.changes, nodes, 0);
    await th.changes.flush();
    await server.stop();
    const headBefore = th.host.log.head();
    for (let round = 1; round < 4; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    expect(th.host.log.head()).toBeGreaterThan(headBefore);
    await waitFor(
      () => th.host.metrics.render().includes('kubemeta_nats_connected{sink="nats"} 0'),
      5_000,
      "the sink to see the outage",
    );

    await server.restart();
    for (let round = 4; round < 6; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();

    for (const [stream, follower] of followers)
      await waitFor(() => converged(th, follower, stream), 10_000, `${stream} to converge`);
    for (const [stream, follower] of followers) {
      await expectConverged(th, follower, stream);
      await expectWholeChain(th, follower, stream, startedAt.get(stream)!);
    }
    await sinkCaughtUp(th, "nats", 5_000);
    expect(th.host.metrics.render()).toMatch(/kubemeta_nats_reconnects_total\{sink="nats"\} [1-9]/);
  },
  SLOW_MS,
);

test(
  "a sink started while NATS is down keeps trying, and publishes everything once NATS is up",
  async () => {
    const { server, th, connections } = await setup();
    const follower = new Follower({ nc: connections[0]!, prefix: PREFIX, stream: ALL, subject: `${PREFIX}.all` });
    await follower.start();
    await server.stop();
    await th.stop();

    const again = await startNatsHost(server, { dir: th.dir });
    cleanups.push(() => again.destroy());
    for (let round = 0; round < 3; round++) await churn(again.changes, nodeNames(3), round);
    await again.changes.flush();
    await waitFor(
      () => /kubemeta_nats_connect_failures_total\{sink="nats"\} ([3-9]|\d\d)/.test(again.host.metrics.render()),
      5_000,
      "several failed attempts",
    );
    await server.restart();

    await waitFor(() => converged(again, follower, ALL), 10_000, "the follower to converge");
    await expectWholeChain(again, follower, ALL, 0);
  },
  SLOW_MS,
);

test(
  "the cursor is durable: a restarted kubemeta publishes from where it stopped, not from the start",
  async () => {
    const { server, th, connections } = await setup();
    const seen: Envelope[] = [];
    const sub = connections[0]!.subscribe(`${PREFIX}.all`, {
      callback: (_e, msg) => void seen.push(msg.json<Envelope>()),
    });
    await connections[0]!.flush();
    const nodes = nodeNames(3);
    for (let round = 0; round < 2; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    const published = th.host.log.head();
    await waitFor(() => seen.at(-1)?.version === published, 5_000, "everything published");
    await th.stop();

    seen.length = 0;
    const again = await startNatsHost(server, { dir: th.dir });
    cleanups.push(() => again.destroy());
    await churn(again.changes, nodes, 2);
    await again.changes.flush();
    await waitFor(() => seen.length >= again.host.log.head() - published, 5_000, "the new updates");
    sub.unsubscribe();
    expect(seen.map((e) => e.version)).toEqual(
      Array.from({ length: again.host.log.head() - published }, (_, i) => published + 1 + i),
    );
  },
  SLOW_MS,
);

test(
  "NATS down for longer than retention: the sink goes on from the head, consumers reset and converge",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server, { retention: { maxUpdates: 30, interval: "20ms" } });
    cleanups.push(() => th.destroy());
    const nc = await client(server);
    cleanups.push(() => nc.close());
    const nodes = nodeNames(3);
    const stream = `node/${nodes[0]}`;
    const follower = new Follower({
      nc,
      prefix: PREFIX,
      stream,
      subject: `${PREFIX}.node.${encodeNodeToken(nodes[0]!)}`,
    });
    await follower.start();
    await churn(th.changes, nodes, 0);
    await th.changes.flush();
    await waitFor(() => converged(th, follower, stream), 5_000, "the follower to converge");

    await server.stop();
    for (let round = 1; round < 8; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    await waitFor(
      () => th.host.log.oldest() > follower.position + 1,
      5_000,
      "retention to prune past the sink's cursor",
    );
    await server.restart();
    await churn(th.changes, nodes, 8);
    await th.changes.flush();

    await waitFor(() => converged(th, follower, stream), 10_000, "the follower to converge after a reset");
    expect(follower.resets).toBe(2);
    // The sink publishes again: what comes next reaches the follower live.
    await th.changes.apply("nodes", "MODIFIED", rawNode(nodes[0]!, "Unknown"));
    await th.changes.flush();
    const next = th.host.log.head();
    await waitFor(() => follower.received.some((e) => e.version === next), 5_000, "the next update, live");
  },
  SLOW_MS,
);

/** Two servers, the first stopped (its port kept): one a sink or a client first connects to while the other is down. */
async function oneOfTwoDown(): Promise<[down: TestNatsServer, up: TestNatsServer]> {
  const [down, up] = [await startNatsServer(), await startNatsServer()];
  cleanups.push(() => Promise.all([down.destroy(), up.destroy()]));
  await down.stop();
  return [down, up];
}

/**
 * The NATS client drops from its pool a server that failed its first connection (unless told to wait on it), so a
 * sink started while one of two servers was down kept only the other, and stayed disconnected once that one went.
 */
test(
  "a connection that cannot reconnect is closed, and the next one tries every server again",
  async () => {
    const [down, up] = await oneOfTwoDown();
    const telemetry = connectionTelemetry();
    const stop = new AbortController();
    cleanups.push(async () => stop.abort());
    // In this order, as the client may shuffle them: the one that is down is tried first, and dropped.
    const options = async (reconnectWaitMs: () => number) => ({
      client: {
        servers: [down.url, up.url],
        noRandomize: true,
        maxReconnectAttempts: -1,
        reconnectDelayHandler: reconnectWaitMs,
        timeout: 1_000,
      },
    });
    const policy = { initialMs: 20, maxMs: 200, connectTimeoutMs: 1_000, replaceAfterMs: 1_000 };
    const first = (await openConnection(options, policy, telemetry, stop.signal))!;
    cleanups.push(() => first.nc.close());
    expect(first.nc.getServer()).toBe(up.url.replace("nats://", ""));

    await down.restart();
    await up.stop();
    let replaced = false;
    void first.closed.then(() => (replaced = true));
    await waitFor(() => replaced, 10_000, "the connection stuck on the server that went away to be closed");
    const second = (await openConnection(options, policy, telemetry, stop.signal))!;
    cleanups.push(() => second.nc.close());
    expect(second.nc.getServer()).toBe(down.url.replace("nats://", ""));
  },
  SLOW_MS,
);

test(
  "a sink started while one of its two servers is down fails over to it once the other goes away",
  async () => {
    const [late, early] = await oneOfTwoDown();
    const th = await startNatsHost(early, {
      sink: { servers: [late.url, early.url], connectTimeout: "500ms" },
    });
    cleanups.push(() => th.destroy());
    const connected = () => /kubemeta_nats_connected\{sink="nats"\} 1/.test(th.host.metrics.render());
    await waitFor(connected, 10_000, "the sink to connect to the server that is up");

    await late.restart();
    await early.stop();
    const nc = await client(late);
    cleanups.push(() => nc.close());
    // Answered on the other server once the sink is there (no responders until then).
    const answers = () =>
      nc.request(`${PREFIX}.replay`, JSON.stringify({ stream: "shared" }), { timeout: 1_000 }).then(
        () => true,
        () => false,
      );
    await waitFor(answers, 15_000, "the sink to fail over to the server that is up");
    const follower = new Follower({ nc, prefix: PREFIX, stream: ALL, subject: `${PREFIX}.all` });
    await follower.start();
    for (let round = 0; round < 2; round++) await churn(th.changes, nodeNames(2), round);
    await th.changes.flush();
    await waitFor(() => converged(th, follower, ALL), 15_000, "the follower on the other server to converge");
    await expectWholeChain(th, follower, ALL, 0);
  },
  SLOW_MS,
);
