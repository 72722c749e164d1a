/**
 * A JetStream stream a user binds to kubemeta's subjects keeps each update once: the
 * `Nats-Msg-Id: <epoch>:<version>` header is the same on `all` and on the update's own
 * subject, and the same when a sink publishes again after a reconnect or a second sink
 * publishes the same log. The stream then holds the log itself, in order.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { Envelope } from "../protocol/envelope.ts";
import { sinkCaughtUp, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { churn, client, CLUSTER, natsSink, nodeNames, PREFIX, rawNode, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const STREAM = "KUBEMETA";

let server: TestNatsServer;
let th: TestHost;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
  nc = await client(server);
  jsm = await jetstreamManager(nc, { timeout: 1_000 });
  await jsm.streams.add({
    name: STREAM,
    subjects: [`${PREFIX}.all`, `${PREFIX}.shared`, `${PREFIX}.node.*`],
    duplicate_window: 120_000_000_000,
  });
  // Two sinks publish the same log: every update reaches the server four times.
  th = await startTestHost({
    cluster: CLUSTER,
    sinks: [natsSink(server, { name: "a" }), natsSink(server, { name: "b" })],
  });
}, SLOW_MS);

afterAll(async () => {
  await nc?.close();
  await th?.destroy();
  await server?.destroy();
});

async function storedVersions(): Promise<{ subject: string; version: number; id: string | undefined }[]> {
  const { state } = await jsm.streams.info(STREAM);
  const stored = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(STREAM, { seq });
    if (msg)
      stored.push({ subject: msg.subject, version: msg.json<Envelope>().version, id: msg.header.get("Nats-Msg-Id") });
  }
  return stored;
}

/** Stored message count; 0 while the request is lost to a reconnect (the test client may lag behind the sinks). */
async function storedCount(): Promise<number> {
  return jsm.streams.info(STREAM).then(
    (info) => info.state.messages,
    () => 0,
  );
}

async function settled(): Promise<void> {
  await th.changes.flush();
  for (const sink of ["a", "b"]) await sinkCaughtUp(th, sink);
}

test(
  "a stream bound to all, shared and node subjects stores each update once, in order, as its `all` envelope",
  async () => {
    const nodes = nodeNames(4);
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    for (let round = 0; round < 3; round++) await churn(th.changes, nodes, round);
    await settled();
    const head = th.host.log.head();
    await waitFor(async () => (await storedCount()) >= head, 5_000, "the stream to fill");
    const stored = await storedVersions();
    expect(stored.map((m) => m.version)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(stored.every((m) => m.subject === `${PREFIX}.all` && m.id === `${th.host.epoch}:${m.version}`)).toBe(true);
  },
  SLOW_MS,
);

test(
  "killed and restarted during churn, the server still ends with every update once, in order",
  async () => {
    const nodes = nodeNames(4);
    await churn(th.changes, nodes, 3);
    await server.stop();
    for (let round = 4; round < 6; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    await server.restart();
    await churn(th.changes, nodes, 6);
    await settled();
    const head = th.host.log.head();
    await waitFor(async () => (await storedCount()) >= head, 5_000, "the stream to fill");
    expect((await storedVersions()).map((m) => m.version)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  },
  SLOW_MS,
);

test(
  "two sinks answer replay in one queue group: one reply per request",
  async () => {
    const received: string[] = [];
    const chunks = await replay(nc, `${PREFIX}.replay`, { stream: "shared", from: `${th.host.epoch}:0` });
    expect(chunks.filter((c) => c.last)).toHaveLength(1);
    const inbox = `_INBOX.queue-check`;
    const sub = nc.subscribe(inbox, { callback: (_e, msg) => void received.push(msg.string()) });
    for (let i = 0; i < 20; i++)
      nc.publish(`${PREFIX}.replay`, JSON.stringify({ stream: "shared", from: `${th.host.epoch}:0` }), {
        reply: inbox,
      });
    await waitFor(() => received.filter((r) => r.includes('"last":true')).length >= 20, 5_000, "20 replies");
    await nc.flush();
    await waitFor(
      async () => {
        const metrics = th.host.metrics.render();
        const answered = [
          ...metrics.matchAll(/kubemeta_nats_replay_requests_total\{result="replay",sink="[ab]"\} (\d+)/g),
        ].reduce((sum, m) => sum + Number(m[1]), 0);
        return answered === 21;
      },
      2_000,
      "each request answered by exactly one sink",
    );
    sub.unsubscribe();
    expect(received.filter((r) => r.includes('"last":true'))).toHaveLength(20);
  },
  SLOW_MS,
);
