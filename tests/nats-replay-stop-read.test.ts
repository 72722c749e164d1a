/**
 * A reply waiting on a read of the store when the NATS sink stops (a remote store that stopped answering, given up
 * only at its own timeout, 10 s, the host's deadline for a plugin's stop): a reset's read of the state, a replay's read
 * of updates, or the read that tells the log of a reader behind retention before its reset. It ends at once with the
 * error chunk that says to ask again, sent while the connection is open, and the stop waits no more for the read,
 * whose result is dropped. The stop waited for the read: every SIGTERM `sink did not stop in time; abandoning it`,
 * the requester told nothing.
 */
import { expect, test } from "bun:test";
import { createInbox } from "@nats-io/transport-node";
import { ALL } from "../protocol/streams.ts";
import type { ReplayChunk } from "../protocol/replay.ts";
import { STOPPING } from "../plugins/sinks/nats/reply-failure.ts";
import { type TestHost, waitFor } from "../testing/index.ts";
import { holdStateReads, holdUpdateReads, type HeldReads } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { natsSuite, nodeNames, rawNode, startNatsHost } from "./nats-fixtures.ts";

const PREFIX = "kubemeta.stopread";
const REPLAY = `${PREFIX}.replay`;
/** Far below the read's hold: it is never let go before the stop is over. */
const STOP_MS = 2_000;

const suite = natsSuite();

/** A host of a few nodes, its responder subscribed; the version after its first node. */
async function hostOfNodes(retention?: Record<string, unknown>): Promise<{ th: TestHost; first: number }> {
  const th = await startNatsHost(suite.server, { sink: { prefix: PREFIX }, retention });
  const [name, ...rest] = nodeNames(5);
  await th.changes.apply("nodes", "ADDED", rawNode(name!));
  await th.changes.flush();
  const first = th.host.log.head();
  for (const other of rest) await th.changes.apply("nodes", "ADDED", rawNode(other));
  await th.changes.flush();
  const position = `${th.host.epoch}:${th.host.log.head()}`;
  expect((await replay(suite.nc, REPLAY, { stream: ALL, from: position })).at(-1)!.last).toBe(true);
  return { th, first };
}

/**
 * Sends `request`, stops the host once its reply's read is held, and lets the read go after the stop: the reply's
 * chunks. The read's late end is waited for, so that anything it leaves unhandled fails the test.
 */
async function stopUnderRead(th: TestHost, held: HeldReads, request: unknown): Promise<ReplayChunk[]> {
  const chunks: ReplayChunk[] = [];
  const inbox = createInbox();
  const sub = suite.nc.subscribe(inbox, { callback: (_, msg) => void chunks.push(msg.json<ReplayChunk>()) });
  try {
    suite.nc.publish(REPLAY, JSON.stringify(request), { reply: inbox });
    await waitFor(() => held.reading === 1, 5_000, "the reply's read of the store, held");
    let stopped = false;
    const stopping = th.host.stop().then(() => (stopped = true));
    await waitFor(() => stopped, STOP_MS, "the sink's stop, its reply's read held");
    await stopping;
    await waitFor(() => chunks.at(-1)?.last === true, 5_000, "the reply's last chunk");
    return chunks;
  } finally {
    held.release();
    await waitFor(() => held.reading === 0, 5_000, "the held read's end");
    sub.unsubscribe();
  }
}

const cut = (th: TestHost): ReplayChunk => ({ epoch: th.host.epoch, seq: 0, updates: [], error: STOPPING, last: true });

test("a reset waiting on its read of the state at a stop ends with `stopping`, the stop not waiting", async () => {
  const { th } = await hostOfNodes();
  try {
    const chunks = await stopUnderRead(th, holdStateReads(th.host.log), { stream: ALL });
    expect(chunks).toEqual([cut(th)]);
  } finally {
    await th.destroy();
  }
}, 30_000);

test.each([
  ["a replay waiting on its read of updates at a stop ends with `stopping`, the stop not waiting", undefined],
  [
    "a reset waiting on the note of a reader behind retention at a stop ends with `stopping` at once",
    { maxUpdates: 2, interval: 50 },
  ],
] as const)(
  "%s",
  async (_, retention) => {
    const { th, first } = await hostOfNodes(retention);
    try {
      if (retention)
        await waitFor(() => th.host.log.oldest() > first + 1, 5_000, "retention to prune past the first node");
      const from = `${th.host.epoch}:${first}`;
      const chunks = await stopUnderRead(th, holdUpdateReads(th.host.log, first), { stream: ALL, from });
      expect(chunks).toEqual([cut(th)]);
    } finally {
      await th.destroy();
    }
  },
  30_000,
);
