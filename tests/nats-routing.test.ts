/**
 * Routing through a real nats-server: every update on `<prefix>.all` and on its own
 * stream's subject, node names with dots turned into one token, prev chains per subject,
 * and the de-duplication header.
 */
import { expect, test } from "bun:test";
import { encodeNodeToken } from "../protocol/node-token.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { sinkCaughtUp, waitFor } from "../testing/index.ts";
import { Follower } from "./nats-consumer.ts";
import {
  churn,
  converged,
  expectConverged,
  nodeNames,
  PREFIX,
  rawNamespace,
  rawNode,
  natsSuite,
  SLOW_MS,
} from "./nats-fixtures.ts";

const suite = natsSuite();

test(
  "100 node subscribers each see only their node's pods and Node; shared and all see theirs; chains are whole",
  async () => {
    const { th, nc } = suite;
    const nodes = nodeNames(100);
    const followers = new Map<string, Follower>();
    for (const node of nodes)
      followers.set(
        `node/${node}`,
        new Follower({
          nc,
          prefix: PREFIX,
          stream: `node/${node}`,
          subject: `${PREFIX}.node.${encodeNodeToken(node)}`,
        }),
      );
    followers.set(SHARED, new Follower({ nc, prefix: PREFIX, stream: SHARED, subject: `${PREFIX}.shared` }));
    followers.set(ALL, new Follower({ nc, prefix: PREFIX, stream: ALL, subject: `${PREFIX}.all` }));
    await Promise.all([...followers.values()].map((f) => f.start()));

    const headers: { subject: string; id: string | undefined; version: number }[] = [];
    const raw = nc.subscribe(`${PREFIX}.>`, {
      callback: (_e, msg) =>
        void headers.push({
          subject: msg.subject,
          id: msg.headers?.get("Nats-Msg-Id"),
          version: msg.json<Envelope>().version,
        }),
    });
    // The server knows the subscription once a round trip behind it returns; the sink publishes on another connection.
    await nc.flush();

    await th.changes.apply("namespaces", "ADDED", rawNamespace("payments"));
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    for (let round = 0; round < 3; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    const head = th.host.log.head();

    for (const [stream, follower] of followers)
      await waitFor(() => converged(th, follower, stream), 10_000, `${stream} to converge`);
    for (const [stream, follower] of followers) {
      await expectConverged(th, follower, stream);
      expect(follower.gaps).toBe(0);
      const node = stream.startsWith("node/") ? stream.slice(5) : undefined;
      // Every stream had live updates (the namespace on shared): the checks of each below see some.
      expect(follower.received.length).toBeGreaterThan(0);
      for (const e of follower.received) {
        expect(e.stream).toBe(stream);
        if (node) expect(e.node).toBe(node);
        if (stream === SHARED) expect(["Namespace", "Service"]).toContain(e.kind);
      }
      if (node) {
        expect(follower.received.filter((e) => e.kind === "Node").length).toBeGreaterThanOrEqual(1);
        // 3 pods added, 2 modified, 1 deleted on each node.
        expect(follower.received.filter((e) => e.kind === "Pod").length).toBe(6);
      }
      // Each message's prev is the previous message of the same subject: no replay was needed.
      follower.received.forEach((e, i) => {
        expect(e.prev).toBe(i === 0 ? 0 : follower.received[i - 1]!.version);
      });
    }
    const all = followers.get(ALL)!;
    expect(all.received.map((e) => e.version)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(all.received.filter((e) => e.node === null && e.kind === "Pod").length).toBe(3);

    await waitFor(() => headers.length >= head * 2 - 3, 5_000, "every message on the wildcard subscription");
    raw.unsubscribe();
    expect(headers.every((h) => h.id === `${th.host.epoch}:${h.version}`)).toBe(true);
    expect(headers.filter((h) => h.subject === `${PREFIX}.all`).length).toBe(head);
  },
  SLOW_MS,
);

test(
  "the sink's cursor follows what it published, and the lag gauge reaches zero",
  async () => {
    const { th } = suite;
    const published = () =>
      Number(/kubemeta_nats_published_total\{sink="nats"\} (\d+)/.exec(th.host.metrics.render())?.[1] ?? 0);
    const before = published();
    // An update of its own, whatever ran before: a namespace, one message on `all` and one on `shared`.
    await th.changes.apply("namespaces", "ADDED", rawNamespace("cursor-check"));
    await th.changes.flush();
    await waitFor(() => published() - before >= 2, 5_000, "the namespace published");
    await sinkCaughtUp(th, "nats", 5_000);
    expect(published() - before).toBe(2);
    expect(th.host.metrics.render()).toContain('kubemeta_nats_connected{sink="nats"} 1');
  },
  SLOW_MS,
);
