/**
 * A reply under way when the NATS sink stops (a SIGTERM during a storm of resets, each chunk of a reset of `shared`
 * sent once per requester): cut at its next chunk by the error chunk that says to ask again, sent while the connection
 * is still open, so that the stop ends whatever is left of the reply; the client library takes nothing of a reset cut
 * so and asks again. The stop waited for the whole reply: past the host's 10 s deadline for a plugin's stop, the
 * connection closed under it and its requester got nothing more.
 */
import { expect, test } from "bun:test";
import { createInbox } from "@nats-io/transport-node";
import { subscribeNats } from "../client/index.ts";
import { ALL } from "../protocol/streams.ts";
import type { ReplayChunk } from "../protocol/replay.ts";
import { STOPPING } from "../plugins/sinks/nats/reply-failure.ts";
import { type TestHost, waitFor } from "../testing/index.ts";
import { recorder } from "./client-recorder.ts";
import { holdStatePages, type HeldPages } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { client, natsSuite, nodeNames, rawNode, startNatsHost } from "./nats-fixtures.ts";

const PREFIX = "kubemeta.cut";
const REPLAY = `${PREFIX}.replay`;
/** Far below the reply's time: its next page never comes unless the test lets it go. */
const STOP_MS = 2_000;
const NODES = 300;

const suite = natsSuite();

/** A host of NODES nodes (three pages of the state, each over a chunk), its responder subscribed. */
async function hostOfPages(): Promise<TestHost> {
  const th = await startNatsHost(suite.server, { sink: { prefix: PREFIX } });
  for (const name of nodeNames(NODES)) {
    const node = rawNode(name);
    node.metadata = {
      ...node.metadata,
      labels: { "kubernetes.io/hostname": name, "example.com/pad": "x".repeat(1_000) },
    };
    await th.changes.apply("nodes", "ADDED", node);
  }
  await th.changes.flush();
  const position = `${th.host.epoch}:${th.host.log.head()}`;
  expect((await replay(suite.nc, REPLAY, { stream: ALL, from: position })).at(-1)!.last).toBe(true);
  return th;
}

/**
 * Stops the host of a reset held after its first page, letting one page more go once its sink stops: how long it took.
 */
async function stopUnderReset(th: TestHost, held: HeldPages): Promise<number> {
  const started = performance.now();
  let stopped = false;
  const stopping = th.host.stop().then(() => (stopped = true));
  await waitFor(
    () => th.host.metrics.render().includes(`kubemeta_nats_replay_subscribed{sink="nats"} 0`),
    5_000,
    "the sink's stop",
  );
  // The reply goes on to its next chunk, where the stop cuts it.
  held.next();
  await waitFor(() => stopped, STOP_MS, "the sink's stop, the reply under way");
  await stopping;
  return performance.now() - started;
}

test("a reset under way when the sink stops ends with `stopping` after its data, and the stop ends", async () => {
  const th = await hostOfPages();
  const held = holdStatePages(th.host.log);
  try {
    const chunks: ReplayChunk[] = [];
    const inbox = createInbox();
    suite.nc.subscribe(inbox, { callback: (_, msg) => void chunks.push(msg.json<ReplayChunk>()) });
    suite.nc.publish(REPLAY, JSON.stringify({ stream: ALL }), { reply: inbox });
    await waitFor(() => held.read === 1 && chunks.length > 0, 5_000, "the reset's first chunks");

    expect(await stopUnderReset(th, held)).toBeLessThan(STOP_MS);
    expect(chunks.at(-1)).toEqual({
      epoch: th.host.epoch,
      seq: chunks.length - 1,
      updates: [],
      error: STOPPING,
      last: true,
    });
    expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, seq) => seq));
    expect(chunks[0]!.reset).toBe("no-resume-point");
    const data = chunks.slice(0, -1);
    expect(data.length).toBeGreaterThan(1);
    expect(data.every((chunk) => chunk.updates.length > 0 && !chunk.last && chunk.error === undefined)).toBe(true);
    // Short of the state: the requester has it all once asked again, not from this reply.
    expect(data.flatMap((chunk) => chunk.updates).length).toBeLessThan(NODES);
    // What /metrics says of it: cut by the stop, no failure (a rolling update would look like an outage).
    const metrics = th.host.metrics.render();
    expect(metrics).toContain(`kubemeta_nats_replay_requests_total{result="stopped",sink="nats"} 1\n`);
    expect(metrics).toContain(`kubemeta_nats_replay_requests_total{result="failed",sink="nats"} 0\n`);
  } finally {
    held.release();
    await th.destroy();
  }
}, 30_000);

test("the client library takes nothing of a reset cut at a stop, says why, and asks again", async () => {
  const th = await hostOfPages();
  const held = holdStatePages(th.host.log);
  const nc = await client(suite.server);
  const r = recorder();
  const subscription = subscribeNats({
    nc,
    prefix: PREFIX,
    streams: [ALL],
    retry: { initialMs: 50, maxMs: 200 },
    ...r.handlers,
  });
  try {
    await waitFor(() => held.read === 1, 5_000, "the subscriber's reset, its first page read");
    expect(await stopUnderReset(th, held)).toBeLessThan(STOP_MS);
    await waitFor(() => r.errors.length > 1, 5_000, "the cut reply, then the next request");
    expect(r.errors[0]!.message).toBe(`replay refused: ${STOPPING}`);
    // Asked again: no kubemeta answers it now.
    expect(r.errors[1]!.message).toStartWith(`no responders on ${REPLAY}`);
    expect([r.resets, r.calls, r.synced, subscription.objects(ALL).size]).toEqual([[], [], [], 0]);
  } finally {
    held.release();
    await subscription.stop();
    await nc.close();
    await th.destroy();
  }
}, 30_000);
