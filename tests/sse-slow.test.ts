/**
 * A subscriber that cannot keep up: its buffer is bounded, it is closed with an OVERFLOW
 * event naming where to resume, the other subscribers are not held back, and resuming
 * from that point loses nothing.
 *
 * The slow subscriber is a curl process stopped with SIGSTOP: a consumer on another
 * machine that stops reading. (Two fetch streams in one Bun process are not independent
 * enough for this: with one body left unread, the other stalled at times in our runs.)
 */
import { afterAll, expect, test } from "bun:test";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { json, SseParser, versionsOf, openSse, type SseEvent } from "./sse-client.ts";

let th: TestHost | undefined;
afterAll(() => th?.destroy());

/** Big labels make big envelopes, so the kernel's socket buffers (a few MB on loopback) fill fast. */
const LABEL = "x".repeat(16_000);
const BATCH = 50;

function parseFile(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  new SseParser((event) => events.push(event)).push(text);
  return events;
}

test("a subscriber that cannot keep up is closed with OVERFLOW; resuming from it loses nothing", async () => {
  th = await startTestHost({ sinks: [{ type: "sse", bufferBytes: 65_536, batchSize: BATCH }] });
  const host = th;
  const epoch = host.host.epoch;
  const overflows = () => host.host.metrics.counter("kubemeta_sse_overflows_total", "").get();
  const slowFile = `${host.dir}/slow.sse`;
  const slow = Bun.spawn(["curl", "-sN", "-o", slowFile, `${host.url}/v1/watch?stream=node/n1`], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const fast = await openSse(host.url, { stream: "node/n1" });
  await waitFor(
    async () => (await Bun.file(slowFile).exists()) && (await Bun.file(slowFile).text()).includes("SYNCED"),
    5000,
    "curl to sync",
  );
  slow.kill("SIGSTOP");

  let produced = 0;
  while (overflows() === 0) {
    if (produced >= 4000) throw new Error(`no overflow after ${produced} updates of ${LABEL.length} bytes`);
    for (let i = 0; i < BATCH; i++, produced++) {
      await host.changes.apply(
        "pods",
        produced < 100 ? "ADDED" : "MODIFIED",
        rawPod(`big-${produced % 100}`, {
          node: "n1",
          labels: { big: LABEL, n: String(produced) },
          rv: String(produced + 1),
        }),
      );
    }
    await host.changes.flush();
    // Lets the fast subscriber, in this same process, read between batches.
    await Bun.sleep(5);
  }
  const head = host.host.log.head();
  const all = Array.from({ length: head }, (_, i) => i + 1);

  // The fast subscriber was not held back by the slow one.
  await waitFor(() => versionsOf(fast.events).at(-1) === head, 10_000, "the fast subscriber to get everything");
  expect(versionsOf(fast.events)).toEqual(all);
  expect(host.host.metrics.gauge("kubemeta_sse_subscribers", "").get({ stream: "node" })).toBe(1);

  // What the slow one was sent ends with OVERFLOW, right after the last update it got.
  slow.kill("SIGCONT");
  expect(await slow.exited).toBe(0);
  const events = parseFile(await Bun.file(slowFile).text());
  const last = events.at(-1)!;
  expect(last.type).toBe("OVERFLOW");
  const received = versionsOf(events);
  const resumeAt = received.at(-1)!;
  expect(received).toEqual(all.slice(0, resumeAt));
  expect(last.lastEventId).toBe(`${epoch}:${resumeAt}`);
  expect(json(last)).toMatchObject({ resume: `${epoch}:${resumeAt}`, version: resumeAt });
  // Memory stayed bounded: it was cut off well before everything was buffered for it.
  expect(resumeAt).toBeLessThan(head);

  // An EventSource reconnects with the OVERFLOW's id and gets the rest, without gap or duplicate.
  const resumed = await openSse(host.url, { stream: "node/n1" }, { lastEventId: last.lastEventId });
  const rest = await resumed.takeUntil("SYNCED", 20_000);
  expect(rest[0]!.type).not.toBe("RESET");
  expect([...received, ...versionsOf(rest)]).toEqual(all);
  resumed.close();
  fast.close();
}, 60_000);
