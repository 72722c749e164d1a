/**
 * A stream waiting on a read of the store when the sse sink stops (a remote store that stopped answering, given up
 * only at its own timeout, 10 s, the host's deadline for a plugin's stop): its reset's read of the state, its
 * catch-up's read of updates, or the read that tells the log of a reader behind retention. The stop closes it at once,
 * its client to come back, and waits no more for the read, whose result is dropped. The stop waited for the read:
 * every SIGTERM `sink did not stop in time; abandoning it`. A live stream's drain of what is committed gives such a
 * read up after 0.5 s, as a `consume` sink's drain: it waited the drain's whole 3 s.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";
import type { Logged } from "./plugins-fixtures.ts";
import { holdStateReads, holdUpdateReads, type HeldReads } from "./held-state-reads.ts";
import { openSse, type SseConnection } from "./sse-client.ts";

const DRAIN_GAVE_UP =
  "sse sink's drain gave up a read of the store left unanswered; its streams end where they are, their clients " +
  "resuming from their last event id: nothing is lost";

/** Far below the read's hold: it is never let go before the stop is over. */
const STOP_MS = 2_000;

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

/** A host of a few pods; the version after its first. */
async function hostOfPods(
  retention?: Record<string, unknown>,
  logged: Logged[] = [],
): Promise<{ th: TestHost; first: number }> {
  const logger = createLogger({ level: "info", write: (line) => void logged.push(JSON.parse(line)) });
  const th = await startTestHost({ sinks: [{ type: "sse" }], retention, logger });
  hosts.push(th);
  await th.changes.apply("pods", "ADDED", rawPod("p-0", { node: "n1" }));
  await th.changes.flush();
  const first = th.host.log.head();
  for (let i = 1; i < 5; i++) await th.changes.apply("pods", "ADDED", rawPod(`p-${i}`, { node: "n1" }));
  await th.changes.flush();
  return { th, first };
}

/**
 * Stops the host once the stream's read is held, and lets the read go after the stop; the read's late end is waited
 * for, so that anything it leaves unhandled fails the test. The types of the events the stream sent.
 */
async function stopUnderRead(th: TestHost, held: HeldReads, opening: Promise<SseConnection>): Promise<string[]> {
  const connection = await opening;
  try {
    await waitFor(() => held.reading === 1, 5_000, "the stream's read of the store, held");
    let stopped = false;
    const stopping = th.host.stop().then(() => (stopped = true));
    await waitFor(() => stopped, STOP_MS, "the sink's stop, its stream's read held");
    await stopping;
    await connection.ended;
    return connection.events.map((event) => event.type);
  } finally {
    held.release();
    await waitFor(() => held.reading === 0, 5_000, "the held read's end");
    connection.close();
  }
}

test("a stream waiting on its reset's read of the state at a stop ends at once, the stop not waiting", async () => {
  const { th } = await hostOfPods();
  const held = holdStateReads(th.host.log);
  expect(await stopUnderRead(th, held, openSse(th.url, { stream: "all" }))).toEqual(["RESET"]);
}, 30_000);

test("a stream waiting on its catch-up's read of updates at a stop ends at once, the stop not waiting", async () => {
  const { th, first } = await hostOfPods();
  const held = holdUpdateReads(th.host.log, first);
  const opening = openSse(th.url, { stream: "all" }, { lastEventId: `${th.host.epoch}:${first}` });
  expect(await stopUnderRead(th, held, opening)).toEqual([]);
}, 30_000);

test("a stream waiting on the note of its reader behind retention at a stop ends at once, not waited for", async () => {
  const { th, first } = await hostOfPods({ maxUpdates: 2, interval: 50 });
  await waitFor(() => th.host.log.oldest() > first + 1, 5_000, "retention to prune past the first pod");
  const held = holdUpdateReads(th.host.log, first);
  const opening = openSse(th.url, { stream: "all" }, { lastEventId: `${th.host.epoch}:${first}` });
  expect(await stopUnderRead(th, held, opening)).toEqual([]);
}, 30_000);

test("a live stream whose read of what the stop committed is held ends once its drain waited 0.5 s on it", async () => {
  const logged: Logged[] = [];
  const { th } = await hostOfPods(undefined, logged);
  const log = th.host.log;
  const synced = log.head();
  // Behind the log's in-memory tail once live, as a slow stream is: follow() waits on the store, which holds every
  // read of what comes after; follow() gives its read up as the stop's finish aborts it, and the drain reads again.
  const held = holdUpdateReads(log, synced);
  const follow = log.follow.bind(log);
  log.follow = (options) =>
    options.after === synced
      ? (async function* () {
          await new Promise((resolve) => options.signal?.addEventListener("abort", resolve, { once: true }));
        })()
      : follow(options);
  const connection = await openSse(th.url, { stream: "all" });
  try {
    await connection.takeUntil("SYNCED");
    await th.changes.apply("pods", "ADDED", rawPod("p-5", { node: "n1" }));
    await th.changes.flush();
    const started = Date.now();
    await th.host.stop();
    expect(Date.now() - started).toBeLessThan(1_500);
    await connection.ended;
    // Nothing past SYNCED: its reconnect resumes from there.
    expect(connection.events.at(-1)?.type).toBe("SYNCED");
    expect(held.most).toBe(1);
    expect(logged.filter((line) => line.msg === DRAIN_GAVE_UP)).toMatchObject([{ level: "warn", streams: 1 }]);
  } finally {
    held.release();
    await waitFor(() => held.reading === 0, 5_000, "the held read's end");
    connection.close();
  }
}, 30_000);
