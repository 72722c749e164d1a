/**
 * The replay responder's slots (`replay.concurrency`) against its turns to read the state (RESET_READS): a reset
 * waiting for its turn holds no slot, so the gap-fills every agent asks after a missed message (a few updates from a
 * known position) are answered while a flood of resets (agents after a wiped store) waits, not after it. Found from
 * outside: a reset held a slot while it waited, and with as many resets as slots a gap-fill waited as long as they.
 */
import { expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import { RESET_READS } from "../plugins/sinks/nats/replay.ts";
import { waitFor } from "../testing/index.ts";
import { holdStateReads } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { natsSuite, nodeNames, PREFIX, rawNode } from "./nats-fixtures.ts";

const REPLAY = `${PREFIX}.replay`;
/** The default `replay.concurrency`, which the suite's host keeps. */
const CONCURRENCY = 4;
/** A gap-fill reads a few updates: well under this, however loaded the machine. */
const ANSWER_MS = 2_000;
const NODES = nodeNames(8);

const suite = natsSuite();

test("a replay of a few updates is answered while more resets than slots wait for a turn to read", async () => {
  const { th, nc } = suite;
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  await th.changes.flush();
  const answersResets = async () => (await replay(nc, REPLAY, { stream: ALL }))[0]?.reset;
  await waitFor(async () => (await answersResets()) === "no-resume-point", 10_000, "resets to be answered");
  const { epoch } = th.host;
  const position = `${epoch}:${th.host.log.head() - 3}`;

  const held = holdStateReads(th.host.log);
  try {
    // One stream each, so that no answer takes another's requesters: RESET_READS read the state (held), and as many
    // as there are slots wait for a turn.
    const streams = NODES.slice(0, CONCURRENCY + RESET_READS).map((node) => `node/${node}`);
    const resets = streams.map((stream) => replay(nc, REPLAY, { stream }, 30_000, 1));
    // Left unanswered when the test fails before it takes them.
    for (const reset of resets) reset.catch(() => {});
    // Two read (their turns taken, each in a slot); the others wait for a turn.
    await waitFor(() => held.reading === RESET_READS, 5_000, "RESET_READS resets reading the state");
    const gapFill = await replay(nc, REPLAY, { stream: ALL, from: position }, ANSWER_MS, 1);
    expect(gapFill.flatMap((chunk) => chunk.updates)).toHaveLength(3);
    expect(gapFill.at(-1)).toMatchObject({ last: true, through: th.host.log.head() });
    expect(held.reading).toBe(RESET_READS);

    held.release();
    for (const chunks of await Promise.all(resets)) {
      expect(chunks[0]!.reset).toBe("no-resume-point");
      expect(chunks.flatMap((chunk) => chunk.updates)).toHaveLength(1);
      expect(chunks.at(-1)!.last).toBe(true);
    }
    expect(held.most).toBe(RESET_READS);
  } finally {
    held.release();
  }
}, 30_000);
