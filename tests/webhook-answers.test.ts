/**
 * What the webhook sink makes of a receiver's answer beyond its status: a body that never ends, or drips, and a
 * redirect. The rest of the sink: tests/webhook.test.ts.
 */
import { expect, test } from "bun:test";
import { rawPod, waitFor } from "../testing/index.ts";
import {
  counter,
  firstFailure,
  hostAndReceiverPerTest,
  hostLogging,
  startReceiver,
  webhookSink,
} from "./webhook-receiver.ts";

const run = hostAndReceiverPerTest();

/** A body that never ends: `text`, then a kilobyte every 20 ms for as long as the connection stays open. */
function endlessBody(text: string): ReadableStream<Uint8Array> {
  const kilobyte = new TextEncoder().encode("x".repeat(1024));
  let first = true;
  return new ReadableStream({
    async pull(controller) {
      if (first) controller.enqueue(new TextEncoder().encode(text));
      else await Bun.sleep(20);
      first = false;
      controller.enqueue(kilobyte);
    },
  });
}

test("a 2xx whose body never ends is delivered at its status, sent once, not timed out and sent again", async () => {
  run.receiver = await startReceiver(() => new Response(endlessBody("ok"), { status: 200 }));
  await hostLogging(run, webhookSink(run.receiver.url, { timeout: "1s" }));
  run.host!.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(
    () => counter(run.host!, "kubemeta_webhook_deliveries_total", { sink: "webhook" }) === 1,
    5_000,
    "the delivery",
  );
  expect(counter(run.host!, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "timeout" })).toBe(0);
  expect(run.receiver.requests).toHaveLength(1);
});

test("a refusal whose body never ends is that refusal, its first words logged, read only so far", async () => {
  let refused = 0;
  run.receiver = await startReceiver(() =>
    refused++ === 0 ? new Response(endlessBody("maintenance until 5 "), { status: 500 }) : new Response("ok"),
  );
  const lines = await hostLogging(run, webhookSink(run.receiver.url, { timeout: "1s" }));
  const failed = await firstFailure(run, lines);
  expect(failed).toMatchObject({
    reason: "status_5xx",
    status: 500,
    detail: expect.stringMatching(/^maintenance until 5 x+$/),
  });
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retry accepted");
  expect(counter(run.host!, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "timeout" })).toBe(0);
});

test("a redirect is not followed; its log line says where it leads, the URL's credentials redacted", async () => {
  let redirected = 0;
  const moved = "https://hooks.example.com/hook?key=k3y-of-the-receiver-0123";
  run.receiver = await startReceiver(() =>
    redirected++ === 0 ? new Response(null, { status: 308, headers: { location: moved } }) : new Response("ok"),
  );
  const lines = await hostLogging(run, webhookSink(`${run.receiver.url}?key=k3y-of-the-receiver-0123`));
  const failed = await firstFailure(run, lines);
  expect(failed).toMatchObject({
    reason: "status_3xx",
    status: 308,
    detail: "redirected to https://hooks.example.com[redacted] (not followed: write it as the sink's url)",
  });
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retry accepted");
  expect(JSON.stringify(lines)).not.toContain("k3y-of-the-receiver");
});
