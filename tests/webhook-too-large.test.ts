/**
 * The webhook sink against a real receiver on loopback that limits request bodies, as nginx's `client_max_body_size`
 * (1 MiB by default) does in front of many: a 413 splits the batch, down to a single update, which alone follows
 * `on4xx`. The rest of the sink: tests/webhook.test.ts.
 */
import { expect, test } from "bun:test";
import { verify } from "../plugins/sinks/webhook/sign.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import {
  deduplicated,
  SECRET,
  startReceiver,
  webhookSink,
  type Received,
  type Receiver,
  hostAndReceiverPerTest,
  counter,
  hostLogging,
  upTo,
} from "./webhook-receiver.ts";

const run = hostAndReceiverPerTest();

/** Bytes a body may have, as the receiver (or a proxy before it) allows: a few dozen slim pods. */
const LIMIT = 16 * 1024;
const acceptedVersions = (r: Receiver) => r.accepted().flatMap((request) => request.body.updates.map((u) => u.version));

/**
 * Waits for the sink to count `updates` delivered: the receiver records a request as it answers it, a moment before
 * the sink has read that answer.
 */
const deliveredUpdates = (th: TestHost, updates: number) =>
  waitFor(
    () => counter(th, "kubemeta_webhook_delivered_updates_total", { sink: "webhook" }) === updates,
    5_000,
    `${updates} updates counted as delivered`,
  );

function limitingReceiver(): Promise<Receiver> {
  return startReceiver((r) =>
    r.raw.length > LIMIT ? new Response("Request Entity Too Large", { status: 413 }) : new Response("ok"),
  );
}

/** A pod whose labels alone are more than the receiver takes. */
const hugePod = (name: string) => rawPod(name, { node: "n1", labels: { blob: "x".repeat(2 * LIMIT) } });

test("a 413 splits a 500-update batch until each part fits: all arrive once, in order, each part signed", async () => {
  run.receiver = await limitingReceiver();
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 500, linger: "2s" } })] });
  for (let i = 0; i < 500; i++) run.host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
  await waitFor(() => deduplicated(run.receiver!.accepted()).length === 500, 10_000, "all 500 updates");
  expect(acceptedVersions(run.receiver)).toEqual(upTo(500));
  expect(run.receiver.requests[0]!.body.updates).toHaveLength(500);
  expect(run.receiver.requests[0]!.status).toBe(413);
  for (const { raw, body, headers } of run.receiver.accepted()) {
    expect(raw.length).toBeLessThanOrEqual(LIMIT);
    expect(body.id).toBe(`${run.host.host.epoch}:${body.first}-${body.last}`);
    expect([body.first, body.last]).toEqual([body.updates[0]!.version, body.updates.at(-1)!.version]);
    expect(headers.get("x-kubemeta-id")).toBe(body.id);
    expect(verify(SECRET, headers.get("x-kubemeta-timestamp"), headers.get("x-kubemeta-signature"), raw)).toBe(true);
  }
  const refused = run.receiver.requests.filter((r) => r.status === 413).length;
  expect(counter(run.host, "kubemeta_webhook_splits_total", { sink: "webhook" })).toBe(refused);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_413" })).toBe(refused);
  await deliveredUpdates(run.host, 500);
  for (const reason of ["status_4xx", "too_large", "max_retries"])
    expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason })).toBe(0);
});

test("on4xx: skip gives up on an update too large alone, counted and logged; the rest arrives", async () => {
  run.receiver = await limitingReceiver();
  const lines = await hostLogging(
    run,
    webhookSink(run.receiver.url, { on4xx: "skip", batch: { size: 20, linger: "1s" } }),
  );
  for (let i = 1; i <= 10; i++)
    run.host!.changes.apply("pods", "ADDED", i === 4 ? hugePod("huge") : rawPod(`web-${i}`));
  await waitFor(() => acceptedVersions(run.receiver!).includes(10), 5_000, "the updates after the huge one");
  expect(acceptedVersions(run.receiver)).toEqual([1, 2, 3, 5, 6, 7, 8, 9, 10]);
  const alone = run.receiver.requests.filter((r) => r.body.updates.length === 1 && r.body.first === 4);
  expect(alone.map((r) => r.status)).toEqual([413]);
  expect(counter(run.host!, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "too_large" })).toBe(
    1,
  );
  expect(counter(run.host!, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "status_4xx" })).toBe(
    0,
  );
  const skipped = lines.find((line) => line.msg === "webhook receiver refuses an update as too large; skipping it");
  expect(skipped).toMatchObject({ kind: "Pod", namespace: "default", name: "huge", version: 4, status: 413 });
  expect(skipped!.bytes).toBeGreaterThan(LIMIT);
});

test("on4xx: retry retries an update too large alone, not split further, and holds what follows", async () => {
  run.receiver = await limitingReceiver();
  const sink = webhookSink(run.receiver.url, {
    batch: { size: 20, linger: "1s" },
    retry: { initial: "100ms", max: "1s" },
  });
  run.host = await startTestHost({ sinks: [sink] });
  for (const pod of [rawPod("a"), hugePod("huge"), rawPod("b")]) run.host.changes.apply("pods", "ADDED", pod);
  const alone = (r: Received) => r.body.updates.length === 1 && r.body.first === 2;
  // Retried as it is (as any 4xx under on4xx: retry, reported stalled after the sink's 60 s), with backoff: five
  // tries are seconds of it, and all the while what follows it waits.
  await waitFor(() => run.receiver!.requests.filter(alone).length >= 5, 10_000, "the huge update retried alone");
  expect(acceptedVersions(run.receiver)).toEqual([1]);
  expect(run.receiver.requests.slice(run.receiver.requests.findIndex(alone)).every(alone)).toBe(true);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "too_large" })).toBe(0);
}, 30_000);

test("a 413 with Retry-After is a passing condition: the batch is sent again whole after it, not split", async () => {
  // RFC 9110: a 413 whose condition is temporary says so with Retry-After; no size is refused for good.
  let refusals = 2;
  run.receiver = await startReceiver(() =>
    refusals-- > 0
      ? new Response("busy: try later", { status: 413, headers: { "retry-after": "1" } })
      : new Response("ok"),
  );
  const sink = webhookSink(run.receiver.url, { on4xx: "skip", batch: { size: 20, linger: "1s" } });
  run.host = await startTestHost({ sinks: [sink] });
  for (let i = 1; i <= 5; i++) run.host.changes.apply("pods", "ADDED", rawPod(`web-${i}`));
  await waitFor(() => acceptedVersions(run.receiver!).includes(5), 10_000, "the batch delivered");
  expect(run.receiver.requests.map((r) => [r.status, r.body.id])).toEqual([
    [413, `${run.host.host.epoch}:1-5`],
    [413, `${run.host.host.epoch}:1-5`],
    [200, `${run.host.host.epoch}:1-5`],
  ]);
  const [first, second, third] = run.receiver.requests.map((r) => r.at);
  expect([second! - first!, third! - second!].every((waited) => waited >= 990)).toBe(true);
  expect(counter(run.host, "kubemeta_webhook_splits_total", { sink: "webhook" })).toBe(0);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_413" })).toBe(2);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "too_large" })).toBe(0);
  await deliveredUpdates(run.host, 5);
});
