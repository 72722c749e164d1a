/**
 * The client library over NATS when what it is sent is not what it asked for, against a real nats-server: a message
 * on a stream's subject that is not an envelope of that stream (a real host beside it), a replay request the server
 * refuses, a replay that ends short of the version asked. Those two come from a scripted responder on
 * `<prefix>.replay`: a real host always answers whole, and its refusals need a request it would never get from the
 * client.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { subscribeNats, type Subscription } from "../client/index.ts";
import type { Envelope } from "../protocol/envelope.ts";
import type { ReplayChunk, ReplayRequestMessage } from "../protocol/replay.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import { waitFor, type TestHost } from "../testing/index.ts";
import { cacheState, matchesStore, recorder, storeState, type Recorder } from "./client-recorder.ts";
import { churn, client, CLUSTER, nodeNames, PREFIX, rawNode, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const NODES = nodeNames(3);
const EPOCH = "e1";
const RETRY = { initialMs: 5, maxMs: 20 };

let server: TestNatsServer;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startNatsServer();
}, SLOW_MS);
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await server?.destroy();
});

async function connection(): Promise<NatsConnection> {
  const nc = await client(server);
  cleanups.push(() => nc.close());
  return nc;
}

function follow(nc: NatsConnection, r: Recorder): Subscription {
  const subscription = subscribeNats({
    nc,
    cluster: CLUSTER,
    streams: [ALL],
    replayTimeoutMs: 1_000,
    retry: RETRY,
    ...r.handlers,
  });
  cleanups.push(() => subscription.stop());
  return subscription;
}

test(
  "what is not an envelope of the stream, on its subject, is reported and left out; the position stays good",
  async () => {
    const th: TestHost = await startNatsHost(server);
    cleanups.push(() => th.destroy());
    for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
    await churn(th.changes, NODES, 0);
    await th.changes.flush();
    const r = recorder();
    const subscription = follow(await connection(), r);
    await subscription.synced;
    // What the first replay met before the sink's responder was up ("no responders") is not what this test is about.
    const before = r.errors.length;

    // A replay chunk (as an earlier kubemeta published to a reply subject a requester named so), an envelope of
    // another stream, and a message that is JSON but nothing else.
    const stranger = await connection();
    const head = th.host.log.head();
    const [last] = await th.host.log.read({ stream: ALL, after: head - 1, limit: 1 });
    const chunk: ReplayChunk = { epoch: th.host.epoch, seq: 0, updates: [], last: true, through: head + 1 };
    const otherStream = { ...last, epoch: th.host.epoch, version: head + 5, prev: head + 4, stream: SHARED };
    for (const payload of [chunk, otherStream, { hello: "world" }])
      stranger.publish(`${PREFIX}.all`, JSON.stringify(payload));
    await stranger.flush();
    await waitFor(() => r.errors.length >= before + 3, 5_000, "the three messages reported");
    expect(r.errors.slice(before).map((e) => e.message)).toEqual([
      `a message on ${PREFIX}.all is not an update of all: no version (a positive integer)`,
      `a message on ${PREFIX}.all is not an update of all: stream shared`,
      `a message on ${PREFIX}.all is not an update of all: no epoch`,
    ]);
    // Left out: the cache is still the store's state, none of the three applied.
    expect(cacheState(subscription, ALL)).toEqual(await storeState(th, ALL));

    // Updates missed while NATS is away are asked for from the position held, which is still one.
    await server.stop();
    await churn(th.changes, NODES, 1);
    await th.changes.flush();
    await server.restart();
    await waitFor(() => matchesStore(th, subscription, [ALL], r.view), 10_000, "the client to catch up");
    expect(r.errors.filter((e) => e.message.startsWith("replay refused"))).toEqual([]);
    expect(r.resets).toHaveLength(1);
  },
  SLOW_MS,
);

/** An envelope of `all` in the scripted log: version `version`, its object `pod-<version>`. */
function envelope(version: number, prev = version - 1): Envelope {
  const name = `pod-${version}`;
  return {
    epoch: EPOCH,
    version,
    prev,
    stream: ALL,
    type: "ADDED",
    kind: "Pod",
    uid: `uid-${version}`,
    namespace: "default",
    name,
    node: null,
    resourceVersion: String(version),
    time: "2026-01-01T00:00:00.000Z",
    object: { metadata: { name, namespace: "default" } },
  };
}

/** What the scripted responder answers a request with: its chunks, or an error. */
type Script = (request: ReplayRequestMessage, asked: number) => Omit<ReplayChunk, "epoch" | "seq"> | string;

/** A responder on `<prefix>.replay` that answers as `script` says (one chunk), and keeps every request. */
async function scriptedResponder(script: Script): Promise<ReplayRequestMessage[]> {
  const nc = await connection();
  const requests: ReplayRequestMessage[] = [];
  nc.subscribe(`${PREFIX}.replay`, {
    callback(_, msg) {
      const request = msg.json<ReplayRequestMessage>();
      requests.push(request);
      const answer = script(request, requests.length);
      const body = typeof answer === "string" ? { updates: [], error: answer, last: true } : answer;
      msg.respond(JSON.stringify({ epoch: EPOCH, seq: 0, ...body }));
    },
  });
  await nc.flush();
  return requests;
}

/** The log 1..`through` as a replay after `from` (exclusive) answers it. */
const replayOf = (from: number, through: number) => ({
  updates: Array.from({ length: Math.max(0, through - from) }, (_, i) => envelope(from + 1 + i)),
  last: true as const,
  through,
});
/** The state after 1..`through` (one object per version) as a reset answers it. */
const stateAt = (through: number) => ({
  ...replayOf(0, through),
  updates: replayOf(0, through).updates.map((e) => ({ ...e, prev: 0 })),
  reset: "no-resume-point" as const,
});
const fromVersion = (request: ReplayRequestMessage) => (request.from ? Number(request.from.split(":")[1]) : null);

/** Starts a client on `all`, synced at version 1 by the responder's first answer, and publishes `live` to it. */
async function clientWithGap(r: Recorder, live: Envelope): Promise<Subscription> {
  const subscription = follow(await connection(), r);
  await subscription.synced;
  const publisher = await connection();
  publisher.publish(`${PREFIX}.all`, JSON.stringify(live));
  await publisher.flush();
  return subscription;
}

const versions = (subscription: Subscription) =>
  [...subscription.objects(ALL).values()].map((e) => e.version).sort((a, b) => a - b);

test(
  "a replay that ends short of the version asked is asked again from where it ended: no update is skipped",
  async () => {
    // A replica whose head is behind the leader's answers the first gap replay up to 2 only, then catches up.
    let head = 2;
    const requests = await scriptedResponder((request, asked) => {
      if (asked === 1) return stateAt(1);
      const from = fromVersion(request)!;
      const through = Math.min(request.to ?? head, head);
      head = 5;
      return replayOf(from, through);
    });
    const r = recorder();
    const subscription = await clientWithGap(r, envelope(5));
    await waitFor(() => versions(subscription).length === 5, 5_000, "every version in the cache");
    expect(versions(subscription)).toEqual([1, 2, 3, 4, 5]);
    expect(requests.slice(1).map((q) => [fromVersion(q), q.to])).toEqual([
      [1, 4],
      [2, 4],
    ]);
    expect(r.errors.map((e) => e.message)).toEqual([
      "missed updates of all between 1 and 4; replaying",
      "a replay of all ended at 2, short of 4; asking again from 3",
    ]);
  },
  SLOW_MS,
);

test(
  "a replay that keeps ending short is asked again a bounded number of times, then as a reset",
  async () => {
    // Replays never get past 2 (the log lost 3 and 4, say); the stream's state is whole.
    const requests = await scriptedResponder((request, asked) => {
      if (request.from === null) return stateAt(asked === 1 ? 1 : 5);
      return replayOf(fromVersion(request)!, 2);
    });
    const r = recorder();
    const subscription = await clientWithGap(r, envelope(5));
    await waitFor(() => requests.at(-1)?.from === null && requests.length > 2, 10_000, "a reset asked");
    await waitFor(() => versions(subscription).length === 5, 5_000, "the state in the cache");
    expect(versions(subscription)).toEqual([1, 2, 3, 4, 5]);
    const ranged = requests.slice(1, -1).map((q) => [fromVersion(q), q.to]);
    expect(ranged).toEqual([[1, 4], ...Array(7).fill([2, 4])]);
    expect(r.errors.filter((e) => e.message.includes("over the gap"))).toEqual([]);
    expect(r.resets.map((info) => info.reason)).toEqual(["no-resume-point", "no-resume-point"]);
  },
  SLOW_MS,
);

test(
  "a replay the server refuses as malformed is asked again as a reset, not as it was",
  async () => {
    const requests = await scriptedResponder((request, asked) => {
      if (request.from === null) return stateAt(asked === 1 ? 1 : 3);
      return 'from must be "<epoch>:<version>"';
    });
    const r = recorder();
    const subscription = await clientWithGap(r, envelope(3));
    await waitFor(() => versions(subscription).length === 3, 5_000, "the state in the cache");
    expect(requests.map((q) => fromVersion(q))).toEqual([null, 1, null]);
    expect(r.errors.map((e) => e.message)).toEqual([
      "missed updates of all between 1 and 2; replaying",
      'replay refused: from must be "<epoch>:<version>"',
    ]);
  },
  SLOW_MS,
);
