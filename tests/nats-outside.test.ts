/**
 * What the README's NATS section tells a user to copy: `replay()` in tests/nats-consumer.ts, named there as the way to
 * read a replay's chunks by hand, reads them as the README says a consumer must (a hole in `seq` is a chunk lost: ask
 * again), against a responder on a real nats-server that loses one chunk of its first reply.
 */
import { afterAll, expect, test } from "bun:test";
import type { ReplayChunk } from "../protocol/replay.ts";
import { replay } from "./nats-consumer.ts";
import { client, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const SUBJECT = "kubemeta.outside.replay";

const started = startNatsServer();
afterAll(async () => (await started).destroy());

const chunk = (seq: number, last?: true): ReplayChunk => ({
  epoch: "e1",
  seq,
  updates: [],
  ...(last ? { last, through: 7 } : {}),
});

test(
  "replay() asks again when a reply's seq has a hole, as the README says a consumer does",
  async () => {
    const server = await started;
    const responder = await client(server);
    const requester = await client(server);
    let requests = 0;
    responder.subscribe(SUBJECT, {
      callback: (_error, msg) => {
        // The first reply loses its chunk 1 (as a slow consumer's server drops it); the second is whole.
        const seqs = requests++ === 0 ? [0, 2] : [0, 1, 2];
        for (const seq of seqs) msg.respond(JSON.stringify(chunk(seq, seq === 2 ? true : undefined)));
      },
    });
    await responder.flush();
    const chunks = await replay(requester, SUBJECT, { stream: "all" }, 1_000).finally(() =>
      Promise.all([responder.close(), requester.close()]),
    );
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2]);
    expect(requests).toBe(2);
  },
  SLOW_MS,
);
