/**
 * The webhook sink against a real receiver on loopback: body, signature, batching,
 * filters, losing nothing through a receiver outage or a restart, draining at stop. Its
 * retry policy: tests/webhook-retries.test.ts; its config: tests/webhook-config.test.ts.
 */
import { expect, test } from "bun:test";
import { sign, verify } from "../plugins/sinks/webhook/sign.ts";
import type { KubeObject } from "../sdk/model.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import {
  acceptedNames,
  counter,
  deduplicated,
  hostAndReceiverPerTest,
  SECRET,
  startReceiver,
  upTo,
  webhookSink,
} from "./webhook-receiver.ts";

const run = hostAndReceiverPerTest();

function rawService(name: string, namespace = "default"): KubeObject {
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: { name, namespace, uid: `uid-svc-${name}`, resourceVersion: "1" },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.10" },
  };
}

const failures = (th: TestHost) =>
  ["network", "status_5xx"].reduce(
    (sum, reason) => sum + counter(th, "kubemeta_webhook_failures_total", { sink: "webhook", reason }),
    0,
  );
const metricsText = async (th: TestHost) => (await fetch(`${th.url}/metrics`)).text();

/** Adds, modifies and deletes pods: `rounds` * 3 updates. */
function churn(th: TestHost, rounds: number, offset = 0): void {
  for (let i = offset; i < offset + rounds; i++) {
    th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: `n${i % 3}` }));
    th.changes.apply("pods", "MODIFIED", rawPod(`web-${i}`, { node: `n${i % 3}`, phase: "Succeeded" }));
    th.changes.apply("pods", "DELETED", rawPod(`web-${i}`, { node: `n${i % 3}` }));
  }
}

test(
  "a request carries the batch and its signature: " + "it verifies, and a tampered body or a stale timestamp does not",
  async () => {
    run.receiver = await startReceiver();
    run.host = await startTestHost({
      cluster: "prod-eu",
      sinks: [
        webhookSink(run.receiver.url, { headers: { Authorization: "Bearer gw", "User-Agent": "gateway-agent" } }),
      ],
    });
    for (const name of ["web-1", "web-2", "web-3"])
      run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
    await waitFor(() => deduplicated(run.receiver!.accepted()).length === 3, 5_000, "three updates");

    const request = run.receiver.accepted()[0]!;
    const { body, headers, raw } = request;
    expect(body).toMatchObject({
      cluster: "prod-eu",
      epoch: run.host.host.epoch,
      stream: "all",
      first: body.updates[0]!.version,
    });
    expect(body.last).toBe(body.updates[body.updates.length - 1]!.version);
    expect(body.id).toBe(`${run.host.host.epoch}:${body.first}-${body.last}`);
    expect(body.updates[0]).toMatchObject({
      epoch: run.host.host.epoch,
      stream: "all",
      type: "ADDED",
      kind: "Pod",
      name: "web-1",
      node: "n1",
    });
    expect(headers.get("x-kubemeta-id")).toBe(body.id);
    expect(headers.get("content-type")).toBe("application/json");
    expect(headers.get("authorization")).toBe("Bearer gw");
    // Replaced, not joined to kubemeta's ("gateway-agent, kubemeta-webhook").
    expect(headers.get("user-agent")).toBe("gateway-agent");

    const timestamp = headers.get("x-kubemeta-timestamp");
    const signature = headers.get("x-kubemeta-signature");
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verify(SECRET, timestamp, signature, raw)).toBe(true);
    expect(verify(SECRET, timestamp, signature, raw.replace("web-1", "web-9"))).toBe(false);
    expect(verify("another-secret", timestamp, signature, raw)).toBe(false);
    const stale = Number(timestamp) - 600;
    expect(verify(SECRET, String(stale), sign(SECRET, stale, raw), raw)).toBe(false);
  },
);

test(
  "batches hold at most batch.size updates, a partial batch leaves after batch.linger, " + "and the order is the log's",
  async () => {
    run.receiver = await startReceiver();
    run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 5, linger: "100ms" } })] });
    for (let i = 0; i < 12; i++) run.host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
    await waitFor(() => deduplicated(run.receiver!.accepted()).length === 12, 5_000, "twelve updates");
    expect(run.receiver.requests.every((r) => r.body.updates.length <= 5)).toBe(true);
    expect(run.receiver.requests.length).toBeGreaterThanOrEqual(3);
    expect(deduplicated(run.receiver.accepted())).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  },
);

test("stream, kind and namespace filters send only what matches, and the cursor moves past the rest", async () => {
  run.receiver = await startReceiver();
  const sink = webhookSink(run.receiver.url, { stream: "node/n1", kinds: ["Pod"], namespaces: ["prod"] });
  run.host = await startTestHost({ sinks: [sink] });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1", namespace: "prod" }));
  run.host.changes.apply("pods", "ADDED", rawPod("b", { node: "n2", namespace: "prod" }));
  run.host.changes.apply("pods", "ADDED", rawPod("c", { node: "n1", namespace: "dev" }));
  run.host.changes.apply("services", "ADDED", rawService("d", "prod"));
  run.host.changes.apply("pods", "ADDED", rawPod("e", { node: "n1", namespace: "prod" }));
  await waitFor(() => acceptedNames(run.receiver!).length === 2, 5_000, "two matching updates");
  const updates = run.receiver.accepted().flatMap((r) => r.body.updates);
  expect(updates.map((u) => [u.name, u.stream, u.version, u.prev])).toEqual([
    ["a", "node/n1", 1, 0],
    ["e", "node/n1", 5, 3],
  ]);
  // Everything after "e" was filtered out or delivered: /metrics shows no lag.
  await waitFor(
    async () => (await metricsText(run.host!)).includes('kubemeta_sink_lag_versions{sink="webhook"} 0'),
    5_000,
    "lag 0",
  );
});

test("a receiver down during churn gets every update once it is back, in order, none missing", async () => {
  run.receiver = await startReceiver();
  await run.receiver.stop();
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 50 } })] });
  churn(run.host, 100);
  await run.host.changes.flush();
  await waitFor(() => failures(run.host!) >= 3, 5_000, "failed deliveries while the receiver is down");
  await waitFor(
    async () => (await metricsText(run.host!)).includes('kubemeta_sink_lag_versions{sink="webhook"} 300'),
    5_000,
    "a lag of 300 in /metrics",
  );

  churn(run.host, 50, 100);
  await run.receiver.start();
  await waitFor(() => deduplicated(run.receiver!.accepted()).length === 450, 10_000, "all 450 updates");
  expect(deduplicated(run.receiver.accepted())).toEqual(upTo(450));
  await waitFor(
    async () => (await metricsText(run.host!)).includes('kubemeta_sink_lag_versions{sink="webhook"} 0'),
    5_000,
    "lag back to 0",
  );
});

test("a kubemeta restart mid-delivery resumes after the cursor: no update lost, no replay from the start", async () => {
  const dir = await tempDir();
  let open = 2;
  run.receiver = await startReceiver(() => (open-- > 0 ? new Response("ok") : new Response("busy", { status: 503 })));
  const sinks = [webhookSink(run.receiver.url, { batch: { size: 10 } })];
  run.host = await startTestHost({ dir, sinks });
  churn(run.host, 20);
  await waitFor(
    () => run.receiver!.accepted().length === 2 && failures(run.host!) >= 2,
    5_000,
    "two batches in, then failures",
  );
  await run.host.stop();
  const lastAccepted = deduplicated(run.receiver.accepted()).at(-1)!;
  expect(lastAccepted).toBe(20);

  const before = run.receiver.requests.length;
  run.receiver.respond = () => new Response("ok");
  run.host = await startTestHost({ dir, sinks });
  await waitFor(() => deduplicated(run.receiver!.accepted()).length === 60, 10_000, "all 60 updates");
  expect(run.receiver.requests[before]!.body.first).toBe(lastAccepted + 1);
  expect(deduplicated(run.receiver.accepted())).toEqual(upTo(60));
});

test(
  "from: head keeps its starting point across a restart: " +
    "what was committed while the receiver was down still arrives",
  async () => {
    const dir = await tempDir();
    run.receiver = await startReceiver(() => new Response("down", { status: 503 }));
    const sinks = [webhookSink(run.receiver.url, { from: "head" })];
    run.host = await startTestHost({ dir, sinks });
    await waitFor(
      async () => (await metricsText(run.host!)).includes('kubemeta_sink_lag_versions{sink="webhook"}'),
      5_000,
      "the sink started",
    );
    run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
    await waitFor(() => run.receiver!.requests.length >= 1, 5_000, "a refused attempt");
    await run.host.stop();

    run.receiver.respond = () => new Response("ok");
    run.host = await startTestHost({ dir, sinks });
    run.host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
    await waitFor(() => acceptedNames(run.receiver!).includes("b"), 5_000, "the update after the restart");
    expect(deduplicated(run.receiver.accepted())).toEqual([1, 2]);
  },
);

test("stop drains: a lingering batch is sent before kubemeta stops; a failing receiver is not waited for", async () => {
  run.receiver = await startReceiver();
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 100, linger: "1m" } })] });
  for (const name of ["web-1", "web-2", "web-3"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await run.host.changes.flush();
  expect(run.receiver.requests).toEqual([]);
  await run.host.destroy();
  run.host = undefined;
  expect(deduplicated(run.receiver.accepted())).toEqual([1, 2, 3]);

  const delivered = run.receiver.requests.length;
  run.receiver.respond = () => new Response("down", { status: 503 });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { retry: { initial: "1m", max: "1m" } })] });
  run.host.changes.apply("pods", "ADDED", rawPod("web-4", { node: "n1" }));
  await waitFor(() => run.receiver!.requests.slice(delivered).some((r) => r.status === 503), 5_000, "a refused batch");
  const began = performance.now();
  await run.host.stop();
  // The drain would wait up to 3 s for a batch the receiver keeps refusing.
  expect(performance.now() - began).toBeLessThan(2_000);
});

test("stop does not drain into a receiver whose refusal arrives once the stop has begun", async () => {
  const refuse = Promise.withResolvers<void>();
  run.receiver = await startReceiver(async () => {
    await refuse.promise;
    return new Response("down", { status: 503 });
  });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { retry: { initial: "1m", max: "1m" } })] });
  run.host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await waitFor(() => run.receiver!.requests.length === 1, 5_000, "a batch at the receiver");
  const began = performance.now();
  const stopping = run.host.stop();
  refuse.resolve();
  await stopping;
  // The drain would wait up to 3 s for a batch the receiver keeps refusing.
  expect(performance.now() - began).toBeLessThan(2_000);
});

test("a batch skipped on a 4xx (on4xx: skip) leaves the receiver answering: stop still drains", async () => {
  let answered = 0;
  run.receiver = await startReceiver(
    () => new Response(answered++ === 0 ? "bad" : "ok", { status: answered === 1 ? 400 : 200 }),
  );
  const sink = webhookSink(run.receiver.url, { on4xx: "skip", batch: { size: 2, linger: "1m" } });
  run.host = await startTestHost({ sinks: [sink] });
  for (const name of ["web-1", "web-2"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => run.receiver!.requests.some((r) => r.status === 400), 5_000, "the refused batch");
  run.host.changes.apply("pods", "ADDED", rawPod("web-3", { node: "n1" }));
  await run.host.changes.flush();
  await run.host.destroy();
  run.host = undefined;
  expect(run.receiver.accepted().flatMap((r) => r.body.updates.map((u) => u.name))).toEqual(["web-3"]);
});
