/**
 * Replay requests waiting for their turn: what each holds meanwhile (its reply subject and what it asks, not its
 * payload), what each gets when the NATS sink stops (kubemeta shutting down, a SIGTERM of a rolling update): an
 * answer, the connection still open, that says to ask again, rather than the requester's timeout; and what those
 * answered together get when they share a reply subject.
 */
import { expect, test } from "bun:test";
import { createInbox, RequestError } from "@nats-io/transport-node";
import { createLogger } from "../host/logger.ts";
import { ALL } from "../protocol/streams.ts";
import { MAX_REQUEST_BYTES, type ReplayChunk } from "../protocol/replay.ts";
import type { Logger } from "../sdk/telemetry.ts";
import type { TestHost } from "../testing/index.ts";
import { holdStateReads, type HeldReads } from "./held-state-reads.ts";
import { replay } from "./nats-consumer.ts";
import { natsSuite, nodeNames, rawNode, startNatsHost } from "./nats-fixtures.ts";
import { startTcpProxy } from "./tcp-proxy.ts";
import { waitFor } from "../testing/index.ts";

const PREFIX = "kubemeta.queued";
const REPLAY = `${PREFIX}.replay`;
/** Well under the 2 s a request ahead of the log is held for, and under a client's 5 s replay timeout. */
const ANSWER_MS = 1_500;

const suite = natsSuite();

/**
 * A host answering replays one at a time, its one slot taken by a reset whose read of the state is held: every
 * request sent next waits.
 */
async function busyHost(
  logger?: Logger,
): Promise<{ th: TestHost; held: HeldReads; position: string; reading: Promise<ReplayChunk[]> }> {
  const th = await startNatsHost(suite.server, { logger, sink: { prefix: PREFIX, replay: { concurrency: 1 } } });
  for (const node of nodeNames(3)) await th.changes.apply("nodes", "ADDED", rawNode(node));
  await th.changes.flush();
  const position = `${th.host.epoch}:${th.host.log.head()}`;
  // The first reply subscribes the responder.
  expect((await replay(suite.nc, REPLAY, { stream: ALL, from: position })).at(-1)!.through).toBe(th.host.log.head());
  const held = holdStateReads(th.host.log);
  const reading = replay(suite.nc, REPLAY, { stream: ALL }, 30_000, 1);
  reading.catch(() => {});
  // In the slot once its turn to read the state came (a reset waiting for a turn holds no slot: replay-line.ts).
  await waitFor(() => held.reading === 1, 5_000, "the reset's read of the state");
  return { th, held, position, reading };
}

/** Answered at once, outside the queue: once it is in, every request sent before it was taken up (one subscription). */
async function allTakenUp(): Promise<void> {
  const tooLarge = JSON.stringify({ stream: ALL, padding: "x".repeat(MAX_REQUEST_BYTES) });
  expect((await replay(suite.nc, REPLAY, tooLarge))[0]!.error).toContain("at most");
}

test("requests waiting for a slot, or for the log to reach their `from`, are told to ask again at a stop", async () => {
  const logged: string[] = [];
  const { th, held, position, reading } = await busyHost(
    createLogger({ level: "warn", write: (line) => void logged.push(line) }),
  );
  try {
    const { nc } = suite;
    const queued = [0, 1, 2].map(() => replay(nc, REPLAY, { stream: ALL, from: position }, ANSWER_MS, 1));
    const ahead = `${th.host.epoch}:${th.host.log.head() + 1_000}`;
    const parked = [0, 1].map(() => replay(nc, REPLAY, { stream: ALL, from: ahead }, ANSWER_MS, 1));
    await allTakenUp();
    expect(held.reading).toBe(1);

    const stopping = th.host.stop();
    const answers = await Promise.all([...queued, ...parked]);
    for (const chunks of answers)
      expect(chunks).toEqual([
        { epoch: th.host.epoch, seq: 0, updates: [], error: "the NATS sink is stopping; ask again later", last: true },
      ]);
    await stopping;
    // The reset in the slot, its read of the state held, is cut short too (tests/nats-replay-stop-read.test.ts).
    expect((await reading).at(-1)).toMatchObject({ last: true, error: "the NATS sink is stopping; ask again later" });
    expect(logged.filter((line) => line.includes('"level":"error"'))).toEqual([]);
    // What /metrics says: each told `stopping`, none a failure (a rolling update is no outage).
    const metrics = th.host.metrics.render();
    expect(metrics).toContain(`kubemeta_nats_replay_requests_total{result="stopped",sink="nats"} 6\n`);
    expect(metrics).toContain(`kubemeta_nats_replay_requests_total{result="failed",sink="nats"} 0\n`);
  } finally {
    held.release();
    await th.destroy();
  }
}, 30_000);

test("requests on their way to the sink as it unsubscribes at a stop are told to ask again, not dropped", async () => {
  const { server, nc } = suite;
  const proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.port });
  const th = await startNatsHost(server, { sink: { prefix: PREFIX, servers: [`nats://127.0.0.1:${proxy.port}`] } });
  try {
    await waitFor(
      () => th.host.metrics.render().includes('kubemeta_nats_replay_subscribed{sink="nats"} 1'),
      10_000,
      "the replay subscription standing",
    );
    // The server routes these to the sink; the proxy keeps them from it until the sink has unsubscribed.
    proxy.hold();
    const inboxes = [0, 1, 2].map(() => createInbox());
    const answers = new Map<string, ReplayChunk[]>(inboxes.map((inbox) => [inbox, []]));
    for (const inbox of inboxes) {
      nc.subscribe(inbox, { callback: (_, msg) => void answers.get(inbox)!.push(msg.json<ReplayChunk>()) });
      nc.publish(REPLAY, JSON.stringify({ stream: ALL }), { reply: inbox });
    }
    await nc.flush();
    const stopping = th.host.stop();
    // Once a request finds no responders, the server has taken the sink's unsubscription.
    const unsubscribed = () =>
      nc.request(REPLAY, JSON.stringify({ stream: ALL }), { timeout: 300 }).then(
        () => false,
        (error: unknown) => error instanceof RequestError && error.isNoResponders(),
      );
    await waitFor(unsubscribed, 10_000, "the replay subscription gone from the server");
    proxy.release();
    await stopping;
    await nc.flush();
    for (const inbox of inboxes)
      expect(answers.get(inbox)).toEqual([
        { epoch: th.host.epoch, seq: 0, updates: [], error: "the NATS sink is stopping; ask again later", last: true },
      ]);
  } finally {
    proxy.release();
    await th.destroy();
    proxy.stop();
  }
}, 30_000);

test("a waiting request holds its reply subject and what it asks, not its payload (up to 16 KiB)", async () => {
  const { th, held } = await busyHost();
  try {
    const requests = 2_000;
    const padding = "x".repeat(15_000);
    Bun.gc(true);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < requests; i++) {
      // Resets of as many streams, and one malformed request in ten: none shares its answer with another.
      const stream = i % 10 === 0 ? "node/Not_A_Node" : `node/n-${i}.example`;
      suite.nc.publish(REPLAY, JSON.stringify({ stream, padding }), { reply: createInbox() });
      if (i % 500 === 0) await suite.nc.flush();
    }
    await allTakenUp();
    Bun.gc(true);
    const kept = process.memoryUsage().arrayBuffers - before;
    console.log(`${requests} waiting requests of 15 KB: +${(kept / 2 ** 20).toFixed(1)} MiB of buffers`);
    // Their payloads are 29 MiB.
    expect(kept).toBeLessThan(3 << 20);
  } finally {
    held.release();
    await th.destroy();
  }
}, 30_000);

test("resets answered together that share a reply subject get each chunk once, and count once each", async () => {
  const { th, held, reading } = await busyHost();
  try {
    const { nc } = suite;
    const resets = () =>
      th.host.metrics.counter("kubemeta_nats_replay_requests_total", "").get({ sink: "nats", result: "reset" });
    const before = resets();
    const heard: ReplayChunk[] = [];
    const inbox = createInbox();
    nc.subscribe(inbox, { callback: (_, msg) => void heard.push(msg.json<ReplayChunk>()) });
    // A consumer reusing one inbox: both wait behind the held reset, and the first answered takes the other along.
    for (let i = 0; i < 2; i++) nc.publish(REPLAY, JSON.stringify({ stream: ALL }), { reply: inbox });
    await allTakenUp();
    held.release();
    await reading;
    await waitFor(() => resets() === before + 3, 10_000, "the held reset and both requests answered");
    // The reply's chunks reached the server before the count; a round trip brings every one of them here.
    await nc.flush();
    expect(heard.map((chunk) => chunk.seq)).toEqual(heard.map((_, i) => i));
    expect(heard.filter((chunk) => chunk.last)).toHaveLength(1);
    expect(heard[0]!.reset).toBe("no-resume-point");
  } finally {
    held.release();
    await th.destroy();
  }
}, 30_000);
