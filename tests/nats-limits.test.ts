/**
 * A server with a small max_payload and large objects: replies are chunked under the
 * limit, an update too large for any message is skipped and said so, and nothing stalls.
 */
import { expect, test } from "bun:test";
import { createInbox } from "@nats-io/transport-node";
import { encodeNodeToken } from "../protocol/node-token.ts";
import { ALL } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, waitFor } from "../testing/index.ts";
import { Follower } from "./nats-consumer.ts";
import { converged, expectConverged, natsSuite, PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import type { ReplayChunk } from "../protocol/replay.ts";
import { jsonText, toEnvelope } from "../sdk/model.ts";
import { subscribeNats } from "../client/nats.ts";
import { createLogger } from "../host/logger.ts";

const MAX_PAYLOAD = 4096;
const NODE = "ip-10-0-9-9.eu-west-1.compute.internal";

/** Labels worth about `bytes` of JSON. */
function labels(bytes: number): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: Math.ceil(bytes / 80) }, (_, i) => [`example.com/label-${i}`, `value-${"v".repeat(50)}-${i}`]),
  );
}

const logged: { msg: string }[] = [];
const suite = natsSuite(
  { maxPayload: MAX_PAYLOAD },
  { logger: createLogger({ write: (line) => void logged.push(JSON.parse(line) as { msg: string }) }) },
);
const NOT_PUBLISHED = "update exceeds the server's max_payload, or leaves no room for a replay chunk; not published";

/** The raw reply messages of a replay request, in order. */
async function rawReplay(request: unknown): Promise<Uint8Array[]> {
  const { nc } = suite;
  const inbox = createInbox();
  const messages: Uint8Array[] = [];
  const done = Promise.withResolvers<void>();
  const sub = nc.subscribe(inbox, {
    callback: (_e, msg) => {
      messages.push(msg.data);
      if (msg.json<ReplayChunk>().last) done.resolve();
    },
  });
  nc.publish(`${PREFIX}.replay`, JSON.stringify(request), { reply: inbox });
  await Promise.race([done.promise, Bun.sleep(5_000).then(() => Promise.reject(new Error("no last chunk")))]);
  sub.unsubscribe();
  return messages;
}

test(
  "large objects under a small max_payload: live messages fit, replies come in chunks under the limit",
  async () => {
    const { th, nc } = suite;
    const follower = new Follower({
      nc,
      prefix: PREFIX,
      stream: `node/${NODE}`,
      subject: `${PREFIX}.node.${encodeNodeToken(NODE)}`,
    });
    await follower.start();
    for (let i = 0; i < 40; i++)
      await th.changes.apply(
        "pods",
        "ADDED",
        rawPod(`big-${i}`, { node: NODE, labels: labels(1_500 + (i % 5) * 300) }),
      );
    await th.changes.flush();
    await waitFor(() => converged(th, follower, `node/${NODE}`), 5_000, "the follower to converge");
    expect(follower.gaps).toBe(0);

    for (const request of [{ stream: ALL, from: `${th.host.epoch}:0` }, { stream: `node/${NODE}` }]) {
      const messages = await rawReplay(request);
      expect(messages.length).toBeGreaterThan(10);
      for (const data of messages) expect(data.length).toBeLessThanOrEqual(MAX_PAYLOAD);
      const chunks = messages.map((data) => JSON.parse(new TextDecoder().decode(data)) as ReplayChunk);
      expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
      expect(chunks.flatMap((c) => c.updates).length).toBe(40);
    }

    // A late subscriber takes the whole state through a chunked reset.
    const late = new Follower({
      nc,
      prefix: PREFIX,
      stream: `node/${NODE}`,
      subject: `${PREFIX}.node.${encodeNodeToken(NODE)}`,
    });
    await late.start();
    await expectConverged(th, late, `node/${NODE}`);
  },
  SLOW_MS,
);

test(
  "an update no message can hold is skipped live and listed as oversized in replays; what follows still flows",
  async () => {
    const { th, nc } = suite;
    const seen: Envelope[] = [];
    const sub = nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
    await nc.flush();
    await th.changes.apply("pods", "ADDED", rawPod("huge", { node: NODE, labels: labels(MAX_PAYLOAD * 2) }));
    await th.changes.apply("pods", "ADDED", rawPod("after-huge", { node: NODE }));
    await th.changes.flush();
    const huge = th.host.log.head() - 1;
    await waitFor(() => seen.some((e) => e.name === "after-huge"), 5_000, "the next update");
    sub.unsubscribe();
    expect(seen.map((e) => e.name)).toEqual(["after-huge"]);
    expect(seen[0]!.prev).toBe(huge);
    expect(th.host.metrics.render()).toContain('kubemeta_nats_skipped_total{reason="oversized",sink="nats"} 2');
    // Skipped on both its subjects, said once: a large object that keeps changing would flood the log.
    expect(logged.filter((line) => line.msg === NOT_PUBLISHED)).toHaveLength(1);

    const chunks = (await rawReplay({ stream: `node/${NODE}`, from: `${th.host.epoch}:${huge - 1}` })).map(
      (d) => JSON.parse(new TextDecoder().decode(d)) as ReplayChunk,
    );
    expect(chunks.flatMap((c) => c.oversized ?? [])).toEqual([huge]);
    expect(chunks.flatMap((c) => c.updates.map((u) => u.name))).toEqual(["after-huge"]);
  },
  SLOW_MS,
);

test(
  "an update a live message holds but a replay chunk cannot is skipped live too: every consumer holds the same",
  async () => {
    const { th, nc } = suite;
    const sized = (name: string, pad: number) => rawPod(name, { node: NODE, labels: { pad: "x".repeat(pad) } });
    const allEnvelopeBytes = async () => {
      const [update] = await th.host.log.read({ stream: ALL, after: th.host.log.head() - 1, limit: 1 });
      return Buffer.byteLength(jsonText(toEnvelope(th.host.epoch, update!, ALL)));
    };
    await th.changes.apply("pods", "ADDED", sized("edge", 1_000));
    await th.changes.flush();
    // What a live message holds besides the envelope: the Nats-Msg-Id header.
    const header = Buffer.byteLength(`NATS/1.0\r\nNats-Msg-Id: ${th.host.epoch}:${th.host.log.head() + 1}\r\n\r\n`);
    const target = MAX_PAYLOAD - header - 30;
    const pad = 1_000 + target - (await allEnvelopeBytes());
    const seen: Envelope[] = [];
    const sub = nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
    await nc.flush();
    await th.changes.apply("pods", "MODIFIED", sized("edge", pad));
    await th.changes.apply("pods", "ADDED", rawPod("after-edge", { node: NODE }));
    await th.changes.flush();
    const edge = th.host.log.head() - 1;
    expect(await th.host.log.read({ stream: ALL, after: edge - 1, limit: 1 }).then(([u]) => u?.name)).toBe("edge");
    await waitFor(() => seen.some((e) => e.name === "after-edge"), 5_000, "the next update");
    sub.unsubscribe();
    // The first `edge` may be published after the subscription began: only what came after it counts.
    expect(seen.filter((e) => e.version >= edge).map((e) => e.name)).toEqual(["after-edge"]);

    for (const stream of [ALL, `node/${NODE}`]) {
      const chunks = (await rawReplay({ stream, from: `${th.host.epoch}:${edge - 1}` })).map(
        (d) => JSON.parse(new TextDecoder().decode(d)) as ReplayChunk,
      );
      expect(chunks.flatMap((c) => c.oversized ?? [])).toEqual([edge]);
      expect(chunks.flatMap((c) => c.updates.map((u) => u.name))).toEqual(["after-edge"]);
    }
  },
  SLOW_MS,
);

test(
  "a pod bound to a name that is not a legal node name goes to `all` only, counted",
  async () => {
    const { th, nc } = suite;
    const seen: Envelope[] = [];
    const sub = nc.subscribe(`${PREFIX}.>`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
    await nc.flush();
    await th.changes.apply("pods", "ADDED", rawPod("odd", { node: "Not_A_Node" }));
    await th.changes.apply("pods", "ADDED", rawPod("marker", { node: NODE }));
    await th.changes.flush();
    await waitFor(
      () => seen.some((e) => e.name === "marker" && e.stream !== ALL),
      5_000,
      "the next update on its node subject",
    );
    sub.unsubscribe();
    expect(seen.map((e) => [e.name, e.stream])).toEqual([
      ["odd", ALL],
      ["marker", ALL],
      ["marker", `node/${NODE}`],
    ]);
    expect(th.host.metrics.render()).toContain('kubemeta_nats_skipped_total{reason="illegal_node_name",sink="nats"} 1');
  },
  SLOW_MS,
);

test(
  "the client library, missing a DELETED too large to send, asks for the stream's state: it drops the object too",
  async () => {
    const { th, nc } = suite;
    await th.changes.apply("pods", "ADDED", rawPod("doomed", { node: NODE }));
    await th.changes.flush();
    const subscription = subscribeNats({
      nc,
      prefix: PREFIX,
      streams: [ALL],
      replayTimeoutMs: 1_000,
      retry: { initialMs: 20, maxMs: 200 },
    });
    const names = () => [...subscription.objects(ALL).values()].map((envelope) => envelope.name);
    try {
      await subscription.synced;
      expect(names()).toContain("doomed");
      // Its last state is too large for any message: the DELETED is skipped live and left out of replays.
      await th.changes.apply("pods", "DELETED", rawPod("doomed", { node: NODE, labels: labels(MAX_PAYLOAD) }));
      await th.changes.apply("pods", "ADDED", rawPod("after-doomed", { node: NODE }));
      await th.changes.flush();
      await waitFor(() => names().includes("after-doomed"), 5_000, "the next update");
      // What the store holds, and every other consumer's reset: without "doomed".
      await waitFor(() => !names().includes("doomed"), 5_000, "the deleted pod gone from the client's cache");
    } finally {
      await subscription.stop();
    }
  },
  SLOW_MS,
);
