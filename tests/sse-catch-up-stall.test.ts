/**
 * An SSE stream resuming from a position (`Last-Event-ID`, `since`) whose client reads nothing is closed once its
 * catch-up has waited two heartbeats for room, as a stalled snapshot is, and counted the same way: it held its
 * stream, its place under `maxStreams` with it, for as long as the connection stayed open.
 *
 * The client is a raw socket that sends its request and reads nothing of the answer (tests/security-raw.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { rawRequest } from "./security-raw.ts";
import { openSse } from "./sse-client.ts";

/** Big labels make big envelopes: the log holds far more than the socket's buffers and the stream's (64 KiB). */
const LABEL = "x".repeat(16_000);
const PODS = 1_000;
const BATCH = 50;

let th: TestHost;
beforeAll(async () => {
  th = await startTestHost({
    sinks: [{ type: "sse", bufferBytes: 65_536, batchSize: BATCH, heartbeat: "100ms", maxStreams: 1 }],
  });
  for (let i = 0; i < PODS; i++)
    await th.changes.apply("pods", "ADDED", rawPod(`big-${i}`, { node: "n1", labels: { big: LABEL } }));
  await th.changes.flush();
});
afterAll(() => th.destroy());

const resumes = [
  ["Last-Event-ID", (epoch: string) => ({ path: "/v1/watch?stream=all", header: `\r\nLast-Event-ID: ${epoch}:1` })],
  ["since", (epoch: string) => ({ path: `/v1/watch?stream=all&since=${epoch}:1`, header: "" })],
] as const;

test.each(resumes)(
  "a catch-up (%s) its client takes nothing of is closed, its place freed",
  async (_, at) => {
    const log = th.host.log;
    const overflows = () => th.host.metrics.counter("kubemeta_sse_overflows_total", "").get();
    const open = () => th.host.metrics.gauge("kubemeta_sse_subscribers", "").get({ stream: "all" });
    const read = log.read.bind(log);
    let reads = 0;
    log.read = async (query) => {
      reads++;
      return read(query);
    };
    // The place under maxStreams (1) free: the last test's subscriber, closed by its client, may still hold it.
    await waitFor(() => open() === 0, 5000, "no stream open");
    const before = overflows();
    const { path, header } = at(log.epoch);
    const stuck = await rawRequest(th.url, `GET ${path} HTTP/1.1${header}`, { unread: true });
    try {
      await waitFor(() => reads > 0, 5000, "the catch-up to read the log");
      // Two heartbeats (200 ms) after its buffer filled; without the bound it stayed open for good.
      await waitFor(() => overflows() === before + 1 && open() === 0, 10_000, "the stalled catch-up to be closed");
      // Closed in its catch-up: most of the log was never read for it.
      expect(reads * BATCH).toBeLessThan(PODS);

      // Its place under maxStreams (1 here) is free: the next subscriber gets in and syncs.
      const next = await openSse(th.url, { stream: "all" }, { lastEventId: `${log.epoch}:${log.head()}` });
      expect(next.response.status).toBe(200);
      expect((await next.takeUntil("SYNCED")).map((event) => event.type)).toEqual(["SYNCED"]);
      next.close();
    } finally {
      stuck.close();
      log.read = read;
    }
  },
  30_000,
);
