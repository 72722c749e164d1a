/**
 * `<prefix>.replay` against a real nats-server: filling a gap, resets (no position, other
 * epoch, ahead of the log, behind retention), bounds, malformed requests.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { encodeNodeToken } from "../protocol/node-token.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { waitFor } from "../testing/index.ts";
import { Follower, replay } from "./nats-consumer.ts";
import {
  churn,
  client,
  converged,
  expectConverged,
  nodeNames,
  PREFIX,
  rawNode,
  natsSuite,
  startNatsHost,
  truth,
  SLOW_MS,
} from "./nats-fixtures.ts";

const REPLAY = `${PREFIX}.replay`;
const NODES = nodeNames(5);

const suite = natsSuite();

beforeAll(async () => {
  const { th } = suite;
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  for (let round = 0; round < 4; round++) await churn(th.changes, NODES, round);
  await th.changes.flush();
}, SLOW_MS);

const envelopes = (chunks: { updates: Envelope[] }[]) => chunks.flatMap((c) => c.updates);

describe("replay", () => {
  test(
    "a subscriber offline during churn fills its gap by replay and ends equal to the store",
    async () => {
      const { server, th } = suite;
      const stream = `node/${NODES[2]}`;
      const subject = `${PREFIX}.node.${encodeNodeToken(NODES[2]!)}`;
      const own = await client(server);
      const follower = new Follower({ nc: own, prefix: PREFIX, stream, subject });
      await follower.start();
      await expectConverged(th, follower, stream);
      const before = follower.position;

      await own.close();
      for (let round = 4; round < 8; round++) await churn(th.changes, NODES, round);
      await th.changes.flush();

      const back = await client(server);
      await follower.resume(back);
      await waitFor(() => converged(th, follower, stream), 5_000, "the follower to catch up");
      await expectConverged(th, follower, stream);
      expect(follower.resets).toBe(1);
      expect(follower.position).toBeGreaterThan(before);
      await back.close();
    },
    SLOW_MS,
  );

  test(
    "updates after `from` up to `to`, prev chain intact, `through` the new position",
    async () => {
      const { th, nc } = suite;
      const all = await th.host.log.read({ stream: SHARED, after: 0, limit: 1_000 });
      const from = all[1]!.version;
      const to = all[all.length - 2]!.version;
      const chunks = await replay(nc, REPLAY, { stream: SHARED, from: `${th.host.epoch}:${from}`, to });
      expect(chunks[0]!.reset).toBeUndefined();
      const got = envelopes(chunks);
      expect(got.map((e) => e.version)).toEqual(
        all.filter((u) => u.version > from && u.version <= to).map((u) => u.version),
      );
      got.forEach((e, i) => {
        expect(e.prev).toBe(i === 0 ? from : got[i - 1]!.version);
      });
      expect(got.every((e) => e.stream === SHARED && e.epoch === th.host.epoch)).toBe(true);
      expect(chunks.at(-1)).toMatchObject({ last: true, through: to });
    },
    SLOW_MS,
  );

  test(
    "without `from`, from another epoch or ahead of the log: a reset and the stream's current state",
    async () => {
      const { th, nc } = suite;
      const stream = `node/${NODES[0]}`;
      const expected = await truth(th, stream);
      const head = th.host.log.head();
      for (const [from, reason] of [
        [undefined, "no-resume-point"],
        ["0123456789abcdef:5", "other-epoch"],
        [`${th.host.epoch}:${head + 1000}`, "ahead-of-log"],
      ] as const) {
        // One ahead of the log is answered after waiting for the log to get there (sdk/resume.ts).
        const chunks = await replay(nc, REPLAY, { stream, from }, 3_000);
        expect(chunks[0]!.reset).toBe(reason);
        const state = envelopes(chunks);
        expect(new Map(state.map((e) => [e.uid, e.version]))).toEqual(expected);
        expect(state.every((e) => e.type === "ADDED" && e.stream === stream && e.node === NODES[0])).toBe(true);
        expect(chunks.at(-1)!.through).toBe(head);
      }
    },
    SLOW_MS,
  );

  test(
    "ahead of a log that cannot read its store (an ha follower, the store down): 'ask again later', not a reset",
    async () => {
      const { th, nc } = suite;
      th.host.log.setBehindStore(true);
      try {
        const from = `${th.host.epoch}:${th.host.log.head() + 1000}`;
        const chunks = await replay(nc, REPLAY, { stream: ALL, from }, 3_000);
        expect(chunks).toHaveLength(1);
        expect(chunks[0]!.reset).toBeUndefined();
        expect(chunks[0]!.error).toBe("this replica cannot read the store yet; ask again later");
      } finally {
        th.host.log.setBehindStore(false);
      }
    },
    SLOW_MS,
  );

  test(
    "from a little ahead of this replica's log, another's further on: a replay once the log gets there",
    async () => {
      const { th, nc } = suite;
      const head = th.host.log.head();
      const chunks = replay(nc, REPLAY, { stream: ALL, from: `${th.host.epoch}:${head + 1}` }, 3_000);
      // Not answered while the log is behind `from` (a reset came at once).
      expect(await Promise.race([chunks, Bun.sleep(300).then(() => "waiting")])).toBe("waiting");
      await th.changes.apply("nodes", "ADDED", rawNode("ahead-1"));
      await th.changes.flush();
      const got = await chunks;
      expect(got[0]!.reset).toBeUndefined();
      expect(envelopes(got)).toEqual([]);
      expect(got.at(-1)!.through).toBe(head + 1);
    },
    SLOW_MS,
  );

  test(
    "requests waiting for the log to reach their `from` hold no slot: others are answered meanwhile",
    async () => {
      const { th, nc } = suite;
      const ahead = `${th.host.epoch}:${th.host.log.head() + 1_000}`;
      let settled = 0;
      const waiting = Array.from({ length: 10 }, () =>
        replay(nc, REPLAY, { stream: ALL, from: ahead }, 3_000).finally(() => settled++),
      );
      const now = await replay(nc, REPLAY, { stream: SHARED });
      expect(now[0]!.reset).toBe("no-resume-point");
      expect(settled).toBe(0);
      for (const chunks of await Promise.all(waiting)) expect(chunks[0]!.reset).toBe("ahead-of-log");
    },
    SLOW_MS,
  );

  test(
    "the all stream replays as a whole chain",
    async () => {
      const { th, nc } = suite;
      const chunks = await replay(nc, REPLAY, { stream: ALL, from: `${th.host.epoch}:0` });
      const got = envelopes(chunks);
      expect(got.map((e) => e.version)).toEqual(Array.from({ length: th.host.log.head() }, (_, i) => i + 1));
      expect(got.every((e) => e.prev === e.version - 1)).toBe(true);
    },
    SLOW_MS,
  );

  test(
    "malformed requests get an error reply, are counted, and the responder keeps answering",
    async () => {
      const { th, nc } = suite;
      const bad = [
        "not json",
        "{}",
        '{"stream":"node/Bad_Name"}',
        '{"stream":"all","from":"nope"}',
        `{"stream":"all","from":"${th.host.epoch}:9","to":3}`,
      ];
      for (const payload of bad) {
        const chunks = await replay(nc, REPLAY, payload);
        expect(chunks).toHaveLength(1);
        expect(chunks[0]).toMatchObject({ last: true, epoch: th.host.epoch });
        expect(chunks[0]!.error).toBeString();
      }
      await waitFor(
        () =>
          th.host.metrics
            .render()
            .includes(`kubemeta_nats_replay_requests_total{result="malformed",sink="nats"} ${bad.length}`),
        2_000,
        "malformed count",
      );
      const chunks = await replay(nc, REPLAY, { stream: SHARED });
      expect(chunks[0]!.reset).toBe("no-resume-point");
      expect(chunks.at(-1)!.last).toBe(true);
    },
    SLOW_MS,
  );
});

describe("retention", () => {
  test(
    "`from` older than retention: a reset with the current state, unless retention removed nothing of the stream",
    async () => {
      const { server, nc } = suite;
      const small = await startNatsHost(server, {
        retention: { maxUpdates: 20, interval: "20ms" },
        sink: { prefix: "kubemeta.small" },
      });
      try {
        // Version 1: a node that never changes again; its stream loses nothing to retention.
        await small.changes.apply("nodes", "ADDED", rawNode("quiet"));
        for (let round = 0; round < 4; round++) await churn(small.changes, NODES, round);
        await small.changes.flush();
        await waitFor(() => small.host.log.oldest() > 2, 5_000, "retention to prune");
        const stream = `node/${NODES[1]}`;
        const chunks = await replay(nc, "kubemeta.small.replay", { stream, from: `${small.host.epoch}:1` });
        expect(chunks[0]!.reset).toBe("behind-retention");
        // Logged and counted as every reader the log finds behind retention.
        expect(small.host.metrics.render()).toContain('kubemeta_reader_resets_total{stream="node"} 1');
        expect(new Map(envelopes(chunks).map((e) => [e.uid, e.version]))).toEqual(await truth(small, stream));
        // The quiet node's agent, at version 1 since, missed nothing: a replay (of nothing), not a reset.
        const quiet = await replay(nc, "kubemeta.small.replay", {
          stream: "node/quiet",
          from: `${small.host.epoch}:1`,
        });
        expect(quiet[0]!.reset).toBeUndefined();
        expect(envelopes(quiet)).toEqual([]);
        expect(quiet.at(-1)!.through).toBe(small.host.log.head());
      } finally {
        await small.destroy();
      }
    },
    SLOW_MS,
  );
});
