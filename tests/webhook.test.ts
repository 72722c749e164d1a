/**
 * The webhook sink against a real receiver on loopback: body, signature, batching,
 * filters, retry policy, losing nothing through a receiver outage or a restart, draining
 * at stop. Its config: tests/webhook-config.test.ts.
 */
import { expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { sign, verify } from "../plugins/sinks/webhook/sign.ts";
import { parseRetryAfter } from "../protocol/retry.ts";
import type { KubeObject } from "../sdk/model.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import {
  deduplicated,
  SECRET,
  startReceiver,
  webhookSink,
  type Receiver,
  hostAndReceiverPerTest,
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

const counter = (th: TestHost, name: string, labels: Record<string, string>) =>
  th.host.metrics.counter(name, "").get(labels);
const names = (r: Receiver) => r.accepted().flatMap((request) => request.body.updates.map((u) => u.name));
const failures = (th: TestHost) =>
  ["network", "status_5xx"].reduce(
    (sum, reason) => sum + counter(th, "kubemeta_webhook_failures_total", { sink: "webhook", reason }),
    0,
  );
const metricsText = async (th: TestHost) => (await fetch(`${th.url}/metrics`)).text();
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

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
  await waitFor(() => names(run.receiver!).length === 2, 5_000, "two matching updates");
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

test("on4xx: skip drops a rejected batch, counts it, and delivers the next", async () => {
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') ? new Response("bad", { status: 400 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 }, on4xx: "skip" })] });
  for (const name of ["a", "poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => names(run.receiver!).includes("b"), 5_000, "the batch after the rejected one");
  expect(names(run.receiver)).toEqual(["a", "b"]);
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(1);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "status_4xx" })).toBe(
    1,
  );
});

test("on4xx: retry (the default) holds the line until the receiver accepts, so nothing overtakes", async () => {
  let rejections = 3;
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') && rejections-- > 0 ? new Response("no", { status: 422 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 } })] });
  for (const name of ["a", "poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => names(run.receiver!).includes("b"), 5_000, "every batch");
  expect(names(run.receiver)).toEqual(["a", "poison", "b"]);
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(4);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_4xx" })).toBe(3);
});

// RFC 9110: a 503's Retry-After says how long the service is expected to be unavailable.
test.each([
  [429, "status_429"],
  [503, "status_5xx"],
])("%d waits for Retry-After, not for the (much shorter) backoff", async (status, reason) => {
  let limited = true;
  run.receiver = await startReceiver(() => {
    if (!limited) return new Response("ok");
    limited = false;
    return new Response("slow down", { status, headers: { "Retry-After": "1" } });
  });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url)] });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retried batch");
  const [first, second] = run.receiver.requests;
  expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason })).toBe(1);
});

test("429 with Retry-After: 0 (or a past date) backs off instead of retrying at once, over and over", async () => {
  const limitedUntil = Date.now() + 500;
  run.receiver = await startReceiver(() =>
    Date.now() < limitedUntil
      ? new Response("slow down", { status: 429, headers: { "Retry-After": "0" } })
      : new Response("ok"),
  );
  run.host = await startTestHost({
    sinks: [webhookSink(run.receiver.url, { retry: { initial: "100ms", max: "100ms" } })],
  });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retried batch");
  // Full jitter over 100 ms: about ten attempts in 500 ms; a retry loop without a delay makes hundreds.
  expect(run.receiver.requests.length).toBeLessThan(40);
});

test("maxRetries gives up on a batch after that many retries, counts it, and goes on", async () => {
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') ? new Response("down", { status: 503 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 }, maxRetries: 2 })] });
  for (const name of ["poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => names(run.receiver!).includes("b"), 5_000, "the batch after the abandoned one");
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(3);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_5xx" })).toBe(3);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "max_retries" })).toBe(
    1,
  );
});

test("a receiver that does not answer in time is retried", async () => {
  let hang = true;
  run.receiver = await startReceiver(async () => {
    if (!hang) return new Response("ok");
    hang = false;
    await Bun.sleep(1_000);
    return new Response("too late");
  });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { timeout: "150ms" })] });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(
    () => run.receiver!.requests.length === 2 && run.receiver!.requests[1]!.status === 200,
    5_000,
    "the retry",
  );
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "timeout" })).toBe(1);
});

/** Starts a host whose webhook posts to `url` and waits for its first failed delivery: that line, and the log. */
async function firstFailureLogged(url: string): Promise<{ failed: Record<string, unknown>; logged: string }> {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  run.host = await startTestHost({ logger, sinks: [webhookSink(url)] });
  run.host.changes.apply("pods", "ADDED", rawPod("web-1"));
  const failed = await waitFor(
    () => lines.find((line) => line.msg === "webhook delivery failed; retrying"),
    5_000,
    "a failed delivery logged",
  );
  return { failed, logged: JSON.stringify(lines) };
}

test("a receiver that cannot be reached: the log says why, never the URL's own credential", async () => {
  // A port nothing listens on any more: each connection is refused.
  const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const url = `http://127.0.0.1:${closed.port}/hooks/T0KEN-in-the-path-0123456789`;
  closed.stop(true);
  const { failed, logged } = await firstFailureLogged(url);
  expect(failed).toMatchObject({ reason: "network", detail: expect.stringMatching(/^ECONNREFUSED: /) });
  expect(logged).not.toContain("T0KEN-in-the-path");
});

test("a receiver that echoes the request's path, query and credentials: no secret of the URL logged", async () => {
  // As Express's default 404 does, and a gateway quoting the Authorization it refused.
  const echoing = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const { pathname, search } = new URL(request.url);
      return new Response(`Cannot POST ${pathname}${search} (${request.headers.get("authorization")})`, {
        status: 404,
      });
    },
  });
  try {
    const base = `http://hook-user:URLPASS-0123456789@127.0.0.1:${echoing.port}`;
    const { failed, logged } = await firstFailureLogged(`${base}/hooks/PATHTOKEN-0123456789?key=QUERYKEY-0123`);
    expect(failed).toMatchObject({ status: 404, detail: expect.stringMatching(/^Cannot POST \[redacted\]/) });
    const basic = Buffer.from("hook-user:URLPASS-0123456789").toString("base64");
    for (const secret of ["URLPASS-0123456789", "PATHTOKEN-0123456789", "QUERYKEY-0123", basic])
      expect(logged).not.toContain(secret);
  } finally {
    echoing.stop(true);
  }
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2026-11-28T04:00:00Z");
  expect(parseRetryAfter("120", now)).toBe(120_000);
  expect(parseRetryAfter("Sat, 28 Nov 2026 04:00:30 GMT", now)).toBe(30_000);
  expect(parseRetryAfter("Sat, 28 Nov 2026 03:00:00 GMT", now)).toBe(0);
  expect(parseRetryAfter("soon", now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
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
    await waitFor(() => names(run.receiver!).includes("b"), 5_000, "the update after the restart");
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
