/**
 * Replay requests a NATS sink holds when it stops (kubemeta shutting down, a SIGTERM of a rolling update): each is
 * answered, the connection still open, with an error that says to ask again, rather than left to the requester's
 * timeout.
 */
import { expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { ALL } from "../protocol/streams.ts";
import { MAX_REQUEST_BYTES } from "../protocol/replay.ts";
import { holdStateReads } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { natsSuite, nodeNames, rawNode, startNatsHost } from "./nats-fixtures.ts";

const PREFIX = "kubemeta.stopping";
const REPLAY = `${PREFIX}.replay`;
/** Well under the 2 s a request ahead of the log is held for, and under a client's 5 s replay timeout. */
const ANSWER_MS = 1_500;

const suite = natsSuite();

test("requests waiting for a slot, or for the log to reach their `from`, are told to ask again at a stop", async () => {
  const logged: string[] = [];
  const th = await startNatsHost(suite.server, {
    logger: createLogger({ level: "warn", write: (line) => void logged.push(line) }),
    sink: { prefix: PREFIX, replay: { concurrency: 1 } },
  });
  try {
    for (const node of nodeNames(3)) await th.changes.apply("nodes", "ADDED", rawNode(node));
    await th.changes.flush();
    const { nc } = suite;
    const position = `${th.host.epoch}:${th.host.log.head()}`;
    // The first reply subscribes the responder; then the one slot is a reset whose read of the state is held.
    expect((await replay(nc, REPLAY, { stream: ALL, from: position })).at(-1)!.through).toBe(th.host.log.head());
    const held = holdStateReads(th.host.log);
    const reading = replay(nc, REPLAY, { stream: ALL }, 10_000, 1);
    const queued = [0, 1, 2].map(() => replay(nc, REPLAY, { stream: ALL, from: position }, ANSWER_MS, 1));
    const ahead = `${th.host.epoch}:${th.host.log.head() + 1_000}`;
    const parked = [0, 1].map(() => replay(nc, REPLAY, { stream: ALL, from: ahead }, ANSWER_MS, 1));
    // Answered at once, outside the queue: once it is in, every request before it was taken up (one subscription).
    const tooLarge = JSON.stringify({ stream: ALL, padding: "x".repeat(MAX_REQUEST_BYTES) });
    expect((await replay(nc, REPLAY, tooLarge))[0]!.error).toContain("at most");
    expect(held.reading).toBe(1);

    const stopping = th.host.stop();
    const answers = await Promise.all([...queued, ...parked]);
    for (const chunks of answers)
      expect(chunks).toEqual([
        { epoch: th.host.epoch, seq: 0, updates: [], error: "the NATS sink is stopping; ask again later", last: true },
      ]);
    held.release();
    await stopping;
    expect((await reading).at(-1)).toMatchObject({ last: true, through: expect.any(Number) });
    expect(logged.filter((line) => line.includes('"level":"error"'))).toEqual([]);
  } finally {
    await th.destroy();
  }
}, 30_000);
