/**
 * A NATS replay whose `from` retention passes after it was let in and before its first read: it reads the stream's
 * state after all (a reset), and takes its turn to read it as any reset does (RESET_READS at once, replay-line.ts),
 * holding no slot while it waits. Found by the last session's closing note: it read the state at once, in its slot,
 * a third read beside the two resets that held their turns.
 */
import { beforeAll, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import { RESET_READS } from "../plugins/sinks/nats/replay.ts";
import { STOPPING } from "../plugins/sinks/nats/reply-failure.ts";
import type { LogQuery } from "../sdk/contract.ts";
import { waitFor } from "../testing/index.ts";
import { holdStateReads } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { natsSuite, nodeNames, PREFIX, rawNode } from "./nats-fixtures.ts";

const REPLAY = `${PREFIX}.replay`;
/** A gap-fill reads a few updates: well under this, however loaded the machine. */
const ANSWER_MS = 2_000;
const NODES = nodeNames(RESET_READS);
const KEPT = 5;

// A slot for each reset reading and one more: the replay that turns into a reset had one.
const suite = natsSuite(
  {},
  { sink: { replay: { concurrency: RESET_READS + 1 } }, retention: { maxUpdates: KEPT, interval: "20ms" } },
);

beforeAll(async () => {
  const { th, nc } = suite;
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  await th.changes.flush();
  // The first reply subscribes the responder.
  const from = `${th.host.epoch}:${th.host.log.head()}`;
  expect((await replay(nc, REPLAY, { stream: ALL, from })).at(-1)!.through).toBe(th.host.log.head());
});

const resetsOfAll = () => suite.th.host.metrics.counter("kubemeta_reader_resets_total", "").get({ stream: "all" });

/**
 * A replay of `all` from the log's head, let in, its first read held (a read of the store slower than a prune) until
 * released, and retention meanwhile past its `from`: the nodes change, and retention keeps the last KEPT updates.
 */
async function overtakenReplay() {
  const { th, nc } = suite;
  const { log } = th.host;
  const from = log.head();
  const read = log.read;
  const released = Promise.withResolvers<void>();
  let reading = 0;
  log.read = async (query: LogQuery) => {
    if (query.after === from) {
      reading++;
      await released.promise;
    }
    return read(query);
  };
  const release = () => {
    released.resolve();
    log.read = read;
  };
  try {
    const answer = replay(nc, REPLAY, { stream: ALL, from: `${th.host.epoch}:${from}` }, 30_000, 1);
    answer.catch(() => {});
    await waitFor(() => reading === 1, 5_000, "the replay's first read");
    for (let round = 0; round < KEPT + 2; round++)
      for (const node of NODES) await th.changes.apply("nodes", "MODIFIED", rawNode(node, String(round % 2 === 0)));
    await th.changes.flush();
    await waitFor(() => log.oldest() > from + 1, 5_000, "retention to prune past the replay's `from`");
    return { answer, release };
  } catch (error) {
    release();
    throw error;
  }
}

test("a replay that finds itself behind retention at its first read waits for a turn to read the state", async () => {
  const { th, nc } = suite;
  const { log, epoch } = th.host;
  const before = resetsOfAll();
  const states = holdStateReads(log);
  let release = () => {};
  try {
    // One stream each, so that neither takes the other along: both read the state (held), each in a slot, its turn.
    const resets = NODES.map((node) => replay(nc, REPLAY, { stream: `node/${node}` }, 30_000, 1));
    for (const reset of resets) reset.catch(() => {});
    await waitFor(() => states.reading === RESET_READS, 5_000, "RESET_READS resets reading the state");
    // In the last slot.
    const overtaken = await overtakenReplay();
    release = overtaken.release;
    release();
    // Its read found it behind retention: counted once, and it then waits for a turn, holding no slot.
    await waitFor(() => resetsOfAll() === before + 1, 5_000, "the replay's read behind retention");
    const gapFill = await replay(nc, REPLAY, { stream: ALL, from: `${epoch}:${log.head() - 3}` }, ANSWER_MS, 1);
    expect(gapFill.flatMap((chunk) => chunk.updates)).toHaveLength(3);
    expect(states.reading).toBe(RESET_READS);

    states.release();
    for (const chunks of await Promise.all(resets)) expect(chunks.at(-1)!.last).toBe(true);
    const answer = await overtaken.answer;
    expect(answer[0]!.reset).toBe("behind-retention");
    expect(answer.flatMap((chunk) => chunk.updates)).toHaveLength(NODES.length);
    expect(answer.at(-1)).toMatchObject({ last: true, through: log.head() });
    expect(states.most).toBe(RESET_READS);
    expect(resetsOfAll()).toBe(before + 1);
  } finally {
    release();
    states.release();
  }
}, 30_000);

test("a replay found behind retention at its first read once the sink stops is told to ask again", async () => {
  const { th } = suite;
  const { answer, release } = await overtakenReplay();
  try {
    const stopping = th.host.stop();
    const subscribed = 'kubemeta_nats_replay_subscribed{sink="nats"} 0';
    await waitFor(() => th.host.metrics.render().includes(subscribed), 5_000, "the sink's stop under way");
    release();
    expect(await answer).toEqual([{ epoch: th.host.epoch, seq: 0, updates: [], error: STOPPING, last: true }]);
    await stopping;
  } finally {
    release();
  }
}, 30_000);
