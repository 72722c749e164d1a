/**
 * A flood of replay requests must not cost memory in proportion to its size: 1,000
 * resets of `all` whose reply subjects nobody reads, against a real nats-server and a
 * host holding a few thousand objects, leave RSS within a bound; the few requesters of
 * the flood that do listen get whole replies, and replay still works afterwards. Nor reads
 * of the store: waiting resets for one reason, behind retention too, share one read.
 */
import { expect, test } from "bun:test";
import { createInbox } from "@nats-io/transport-node";
import { ALL } from "../protocol/streams.ts";
import type { ReplayChunk } from "../protocol/replay.ts";
import { rawPod, waitFor, type TestHost } from "../testing/index.ts";
import { createLogger } from "../host/logger.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { RESET_READS } from "../plugins/sinks/nats/replay.ts";
import { STOPPING } from "../plugins/sinks/nats/reply-failure.ts";
import { replay } from "./nats-consumer.ts";
import { holdStateReads, type HeldReads } from "./held-state-reads.ts";
import { churn, nodeNames, natsSuite, PREFIX, rawNode, startNatsHost } from "./nats-fixtures.ts";

const REPLAY = `${PREFIX}.replay`;
const NODES = nodeNames(20);
const PODS = 3_000;
const REQUESTS = 1_000;
/**
 * What the flood holds while it is answered, measured after a full GC once the flood is queued and then every 500 ms
 * (a GC in a process this size takes tens of ms; more often slows the flood). 1,000 queued resets of `all` held a
 * snapshot each before (+216 MiB here); now they hold none. Without the GCs the peak also counts garbage of the 3 GB
 * sent to 1,000 inboxes (frames the NATS client copies), +95 to +180 MiB depending on when the GC runs, all of it
 * returned at the next collection.
 */
const MAX_HELD_BYTES = 100 << 20;

const suite = natsSuite();

/** A pod about the size of a real slim one (1 KB and more of JSON). */
function pod(i: number) {
  const labels: Record<string, string> = { app: `app-${i % 50}`, "pod-template-hash": `${(i * 7919).toString(36)}` };
  for (let l = 0; l < 12; l++) labels[`example.com/label-${l}`] = `value-${l}-${i}-padding-to-real-size`;
  return rawPod(`pod-${i}`, { node: NODES[i % NODES.length], namespace: `ns-${i % 10}`, labels });
}

const replayed = (result: string) =>
  suite.th.host.metrics.counter("kubemeta_nats_replay_requests_total", "").get({ sink: "nats", result });

/** What a listening requester got, counted as it arrives (keeping the chunks would weigh on the RSS measured). */
interface Heard {
  seqs: number[];
  updates: number;
  reset?: string;
  last: boolean;
}

/** Sends a reset request whose reply is listened to. */
function listenedRequest(stream: string): Heard {
  const { nc } = suite;
  const heard: Heard = { seqs: [], updates: 0, last: false };
  const inbox = createInbox();
  const sub = nc.subscribe(inbox, {
    callback(_, msg) {
      const chunk = msg.json<ReplayChunk>();
      heard.seqs.push(chunk.seq);
      heard.updates += chunk.updates.length;
      heard.reset ??= chunk.reset;
      heard.last = chunk.last === true;
      if (heard.last) sub.unsubscribe();
    },
  });
  nc.publish(REPLAY, JSON.stringify({ stream }), { reply: inbox });
  return heard;
}

test("1,000 unread resets of `all` hold under 100 MiB; listeners and a later replay get them whole", async () => {
  const { th, nc } = suite;
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  for (let i = 0; i < PODS; i++) await th.changes.apply("pods", "ADDED", pod(i));
  await th.changes.flush();
  const objects = NODES.length + PODS;
  const onNode = 1 + PODS / NODES.length;

  // Warm up the path once, so that what is measured is the flood, not the first use of the code.
  expect((await replay(nc, REPLAY, { stream: ALL })).flatMap((c) => c.updates)).toHaveLength(objects);
  Bun.gc(true);
  const before = process.memoryUsage().rss;
  let peak = before;
  const sample = () => {
    Bun.gc(true);
    peak = Math.max(peak, process.memoryUsage().rss);
  };
  const sampler = setInterval(sample, 500);
  const listened: Array<{ heard: Heard; expected: number }> = [];
  try {
    const resetsBefore = replayed("reset");
    for (let i = 0; i < REQUESTS; i++) {
      // A few requesters in the flood listen: one for `all`, and one for a node's stream among the others.
      if (i === REQUESTS / 2) listened.push({ heard: listenedRequest(ALL), expected: objects });
      else if (i === REQUESTS / 2 + 1) listened.push({ heard: listenedRequest(`node/${NODES[0]}`), expected: onNode });
      else nc.publish(REPLAY, '{"stream":"all"}', { reply: createInbox() });
    }
    await nc.flush();
    sample();
    await waitFor(() => replayed("reset") >= resetsBefore + REQUESTS, 120_000, "every request answered");
    await waitFor(() => listened.every(({ heard }) => heard.last), 10_000, "the listened replies");
  } finally {
    clearInterval(sampler);
  }
  Bun.gc(true);
  peak = Math.max(peak, process.memoryUsage().rss);
  const held = peak - before;
  console.log(`RSS ${(before / 2 ** 20).toFixed(0)} MiB, held at most +${(held / 2 ** 20).toFixed(0)} MiB`);
  expect(held).toBeLessThan(MAX_HELD_BYTES);
  for (const { heard, expected } of listened) {
    expect(heard.reset).toBe("no-resume-point");
    expect(heard.seqs).toEqual(heard.seqs.map((_, i) => i));
    expect(heard.updates).toBe(expected);
  }

  const chunks = await replay(nc, REPLAY, { stream: ALL });
  expect(chunks[0]!.reset).toBe("no-resume-point");
  expect(chunks.at(-1)!.last).toBe(true);
  expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
  expect(chunks.flatMap((c) => c.updates)).toHaveLength(objects);
}, 180_000);

test("500 resets behind retention, all at once, are answered from a few reads of the state, not one each", async () => {
  const { server, nc } = suite;
  const th = await startNatsHost(server, {
    retention: { maxUpdates: 50, interval: "20ms" },
    sink: { prefix: "kubemeta.pruned" },
  });
  try {
    const nodes = NODES.slice(0, 5);
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    for (let round = 0; round < 10; round++) await churn(th.changes, nodes, round);
    await th.changes.flush();
    await waitFor(() => th.host.log.oldest() > 10, 5_000, "retention to prune");
    const { log } = th.host;
    const snapshotPages = log.snapshotPages;
    let reads = 0;
    // The reads counted, and held until every request is at the server: the first answers cannot end before the
    // rest of the flood arrives, however slow the machine.
    const flooded = Promise.withResolvers<void>();
    log.snapshotPages = (query, pageSize) => {
      reads++;
      return (async function* () {
        await flooded.promise;
        yield* snapshotPages(query, pageSize);
      })();
    };
    const resets = () =>
      th.host.metrics.counter("kubemeta_nats_replay_requests_total", "").get({ sink: "nats", result: "reset" });
    const request = JSON.stringify({ stream: ALL, from: `${th.host.epoch}:1` });
    const requests = 500;
    const heard: ReplayChunk[] = [];
    const listened = createInbox();
    nc.subscribe(listened, { callback: (_, msg) => void heard.push(msg.json<ReplayChunk>()) });
    for (let i = 0; i < requests; i++)
      nc.publish("kubemeta.pruned.replay", request, { reply: i === requests - 1 ? listened : createInbox() });
    await nc.flush();
    flooded.resolve();
    await waitFor(() => resets() === requests, 30_000, "every request answered");
    await waitFor(() => heard.at(-1)?.last === true, 5_000, "the listened reply");
    expect(heard[0]!.reset).toBe("behind-retention");
    // Resets wait in line for a turn (RESET_READS), holding no slot: each answer takes all that wait alike when its
    // turn comes.
    console.log(`${requests} resets behind retention: ${reads} reads of the state`);
    expect(reads).toBeLessThanOrEqual(10);
  } finally {
    await th.destroy();
  }
}, 60_000);

const TURNS_REPLAY = "kubemeta.turns.replay";

/** A host of its own with five nodes, answering resets (until it has seen the store whole, they are told to wait). */
async function startTurnsHost(logger?: Logger): Promise<TestHost> {
  const th = await startNatsHost(suite.server, {
    logger,
    sink: { prefix: "kubemeta.turns", replay: { concurrency: 8 } },
  });
  for (const node of NODES.slice(0, 5)) await th.changes.apply("nodes", "ADDED", rawNode(node));
  await th.changes.flush();
  const answersResets = async () => (await replay(suite.nc, TURNS_REPLAY, { stream: ALL }))[0]?.reset;
  await waitFor(async () => (await answersResets()) === "no-resume-point", 10_000, "resets to be answered");
  return th;
}

/**
 * Resets that no answer can share (one stream each), then a replay that reads no state: once its reply is in, the
 * resets have been taken up (one subscription, in order); then RESET_READS of them reading the state, once their turns
 * came (a reset waiting for its turn holds no slot, so the replay may be answered first: replay-line.ts).
 */
async function sendResets(th: TestHost, held: HeldReads, count: number): Promise<Promise<ReplayChunk[]>[]> {
  const streams = [...NODES.slice(0, 5).map((node) => `node/${node}`), "shared"].slice(0, count);
  const answers = streams.map((stream) => replay(suite.nc, TURNS_REPLAY, { stream }, 10_000, 1));
  await replay(suite.nc, TURNS_REPLAY, { stream: ALL, from: `${th.host.epoch}:${th.host.log.head()}` });
  await waitFor(() => held.reading >= RESET_READS, 5_000, "RESET_READS resets reading the state");
  return answers;
}

test("resets of different streams read the state RESET_READS at a time, whatever concurrency allows", async () => {
  const th = await startTurnsHost();
  try {
    const held = holdStateReads(th.host.log);
    const answers = await sendResets(th, held, 6);
    expect(held.reading).toBe(RESET_READS);
    held.release();
    for (const chunks of await Promise.all(answers)) {
      expect(chunks[0]!.reset).toBe("no-resume-point");
      expect(chunks.at(-1)!.last).toBe(true);
    }
    expect(held.most).toBe(RESET_READS);
  } finally {
    await th.destroy();
  }
}, 30_000);

test("a sink that stops while resets wait for their turn tells them to ask again, and logs no error", async () => {
  const logged: string[] = [];
  const th = await startTurnsHost(createLogger({ level: "warn", write: (line) => void logged.push(line) }));
  try {
    const held = holdStateReads(th.host.log);
    const answers = await sendResets(th, held, RESET_READS + 2);
    expect(held.reading).toBe(RESET_READS);
    let answered = 0;
    for (const answer of answers) void answer.then(() => answered++);
    const stopping = th.host.stop();
    // Every one is answered at once: those waiting for a turn, and those whose read of the state is held (the stop
    // waits for no held read: tests/nats-replay-stop-read.test.ts).
    await waitFor(() => answered === answers.length, 5_000, "every reset to be answered");
    await stopping;
    const ends = (await Promise.all(answers)).map((chunks) => chunks.at(-1)!);
    expect(ends.map((end) => end.error ?? "whole")).toEqual(answers.map(() => STOPPING));
    held.release();
    expect(logged.filter((line) => line.includes('"level":"error"'))).toEqual([]);
  } finally {
    await th.destroy();
  }
}, 30_000);
