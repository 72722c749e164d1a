/**
 * What the webhook sink logs of a receiver that fails for long, against a real receiver on loopback: an outage's
 * first failure and each new cause (a status, an error code) a warning, the rest bounded, and one line once the
 * receiver accepts again; batches given up an error at most once a minute, the counter counting every update. A
 * receiver answering 429 `Retry-After: 1` for an hour would otherwise write a line a second for as long.
 */
import { expect, test } from "bun:test";
import { rawPod, waitFor } from "../testing/index.ts";
import { counter, hostAndReceiverPerTest, hostLogging, startReceiver, webhookSink } from "./webhook-receiver.ts";

const run = hostAndReceiverPerTest();

const FAILED = "webhook delivery failed; retrying";
const RECOVERED = "webhook delivery works again";
const failures = (reason: string) => counter(run.host!, "kubemeta_webhook_failures_total", { sink: "webhook", reason });

test("a receiver failing 20 times: one warning, not 20, and one info line once it accepts again", async () => {
  let refusals = 20;
  run.receiver = await startReceiver(() =>
    refusals-- > 0 ? new Response("unavailable", { status: 503 }) : new Response("ok"),
  );
  const lines = await hostLogging(run, webhookSink(run.receiver.url, { retry: { initial: "5ms", max: "10ms" } }));
  run.host!.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  const recovered = await waitFor(() => lines.find((line) => line.msg === RECOVERED), 5_000, "the recovery");
  expect(run.receiver.accepted()).toHaveLength(1);
  expect(failures("status_5xx")).toBe(20);
  const failed = lines.filter((line) => line.msg === FAILED);
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({ level: "warn", reason: "status_5xx", status: 503, detail: "unavailable" });
  expect(recovered).toMatchObject({ level: "info", failedAttempts: 20, downMs: expect.any(Number) });
});

test("a change of cause mid-outage (429, 503, refused connections) is a warning at once", async () => {
  let served = 0;
  // The 503's Retry-After holds the next attempt back while the receiver goes down: no request is cut off in flight.
  run.receiver = await startReceiver(() =>
    ++served <= 5
      ? new Response("slow down", { status: 429 })
      : new Response("maintenance", { status: 503, headers: { "Retry-After": "1" } }),
  );
  const lines = await hostLogging(run, webhookSink(run.receiver.url, { retry: { initial: "5ms", max: "10ms" } }));
  run.host!.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(() => failures("status_5xx") === 1, 5_000, "the 503");
  await run.receiver.stop();
  await waitFor(() => failures("network") >= 5, 5_000, "refused connections");
  run.receiver.respond = () => new Response("ok");
  await run.receiver.start();
  const recovered = await waitFor(() => lines.find((line) => line.msg === RECOVERED), 5_000, "the recovery");
  const warned = lines.filter((line) => line.msg === FAILED);
  expect(warned.map(({ level, reason, status }) => ({ level, reason, status }))).toEqual([
    { level: "warn", reason: "status_429", status: 429 },
    { level: "warn", reason: "status_5xx", status: 503 },
    { level: "warn", reason: "network", status: undefined },
  ]);
  expect(warned[1]).toMatchObject({ failedAttempts: 6 });
  expect(warned[2]).toMatchObject({ detail: expect.stringMatching(/^ECONNREFUSED: /) });
  const attempts = ["status_429", "status_5xx", "network"].map(failures).reduce((sum, n) => sum + n);
  expect(recovered).toMatchObject({ level: "info", failedAttempts: attempts });
});

// Each batch given up is data the receiver did not get: said, as an error, but not once per batch.
test.each([
  ["on4xx: skip", { on4xx: "skip" }, 400, "status_4xx", "webhook receiver rejected a batch; skipping it (on4xx: skip)"],
  ["maxRetries", { maxRetries: 1 }, 503, "max_retries", "webhook gave up on a batch after maxRetries"],
  ["a 413", { on4xx: "skip" }, 413, "too_large", "webhook receiver refuses an update as too large; skipping it"],
])("batches given up (%s): one error line for ten, every update counted", async (_, extra, status, reason, msg) => {
  run.receiver = await startReceiver(() => new Response("no", { status }));
  const lines = await hostLogging(run, webhookSink(run.receiver.url, { batch: { size: 1 }, ...extra }));
  for (let i = 0; i < 10; i++) run.host!.changes.apply("pods", "ADDED", rawPod(`p${i}`, { node: "n1" }));
  const skipped = () => counter(run.host!, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason });
  await waitFor(() => skipped() === 10, 5_000, "ten updates given up");
  const errors = lines.filter((line) => line.level === "error");
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatchObject({ msg, status });
});

test("a receiver that does not answer in time: the warning's detail says so, with the timeout", async () => {
  run.receiver = await startReceiver(async () => {
    await Bun.sleep(1_000);
    return new Response("too late");
  });
  const lines = await hostLogging(run, webhookSink(run.receiver.url, { timeout: "150ms" }));
  run.host!.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  const failed = await waitFor(() => lines.find((line) => line.msg === FAILED), 5_000, "the warning");
  expect(structuredClone(failed)).toMatchObject({
    level: "warn",
    reason: "timeout",
    detail: "no answer within the sink's timeout, 150 ms",
  });
});
