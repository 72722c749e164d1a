/**
 * Issue 10: metric labels take values from a bounded set. Clients name node streams without
 * bound, and kinds come from the API server: neither may add series to /metrics for good. And
 * the series of rare events are there from the start, at 0.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { MAX_LABEL_VALUES, OTHER_LABEL_VALUE } from "../host/metrics.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { type RawExchange, rawRequest } from "./security-raw.ts";
import { startNatsServer } from "./nats-server.ts";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(options: Parameters<typeof startTestHost>[0] = {}): Promise<TestHost> {
  const th = await startTestHost(options);
  hosts.push(th);
  return th;
}

async function metricLines(th: TestHost, prefix = ""): Promise<string[]> {
  const text = await (await fetch(`${th.url}/metrics`)).text();
  return text.split("\n").filter((line) => line !== "" && line.startsWith(prefix));
}

test("300 node streams open at once are one subscribers series; /metrics does not grow with them", async () => {
  const th = await host({ sinks: [{ type: "sse", maxStreamsPerClient: 1000 }] });
  const streams: RawExchange[] = [];
  const open = async (node: string) => {
    const stream = await rawRequest(th.url, `GET /v1/watch?stream=node/${node} HTTP/1.1`);
    streams.push(stream);
    await waitFor(() => stream.text().includes("event: SYNCED"), 10_000, `the snapshot of node/${node}`);
  };
  try {
    await open("first");
    const before = (await metricLines(th)).length;
    for (let i = 0; i < 300; i++) await open(`node-${i}.example.com`);

    expect(await metricLines(th, "kubemeta_sse_subscribers")).toEqual(['kubemeta_sse_subscribers{stream="node"} 301']);
    expect((await metricLines(th)).length).toBe(before);
  } finally {
    for (const stream of streams) stream.close();
  }
  await waitFor(
    async () =>
      (await metricLines(th, "kubemeta_sse_subscribers{")).join() === 'kubemeta_sse_subscribers{stream="node"} 0',
    10_000,
    "no subscriber, shown as 0",
  );
}, 60_000);

test("readers behind retention on many node streams leave one resets series, and one log line", async () => {
  const said: string[] = [];
  const logger = createLogger({ level: "warn", write: (line) => said.push(line) });
  const th = await host({ retention: { maxUpdates: 2, interval: "50ms" }, logger });
  // Each node's first update is retention's to delete once its pod changes: every stream then has a horizon.
  const pod = (i: number, phase: string) => rawPod(`p${i}`, { node: `gone-${i}`, phase, rv: phase });
  for (let i = 0; i < 50; i++) th.changes.apply("pods", "ADDED", pod(i, "Pending"));
  for (let i = 0; i < 50; i++) th.changes.apply("pods", "MODIFIED", pod(i, "Running"));
  await th.changes.flush();
  await waitFor(() => th.host.log.horizon("node/gone-49") === 50, 5000, "retention to prune");
  for (let i = 0; i < 50; i++) {
    const response = await fetch(`${th.url}/v1/updates?stream=node/gone-${i}&since=${th.host.epoch}:0`);
    expect(response.status).toBe(410);
  }
  expect(await metricLines(th, "kubemeta_reader_resets_total")).toEqual([
    'kubemeta_reader_resets_total{stream="all"} 0',
    'kubemeta_reader_resets_total{stream="shared"} 0',
    'kubemeta_reader_resets_total{stream="node"} 50',
  ]);
  // Fifty agents coming back at once: counted each, logged once (the next line, a minute on, says how many were not).
  expect(said.filter((line) => line.includes("behind retention"))).toHaveLength(1);
});

test("kinds past the bound of label values are counted as other", async () => {
  const th = await host();
  const kinds = MAX_LABEL_VALUES + 50;
  for (let i = 0; i < kinds; i++) {
    const name = `w${i}`;
    th.changes.apply("widgets", "ADDED", {
      kind: `Widget${i}`,
      apiVersion: "example.com/v1",
      metadata: { name, uid: name },
    });
  }
  await th.changes.flush();
  const committed = await metricLines(th, "kubemeta_updates_committed_total{");
  expect(committed.length).toBe(MAX_LABEL_VALUES + 1);
  expect(committed).toContain(`kubemeta_updates_committed_total{kind="${OTHER_LABEL_VALUE}",type="ADDED"} 50`);
});

test("the counters of rare events are there at 0 from the start: rate() has a series before the first", async () => {
  const nats = await startNatsServer();
  try {
    const th = await host({
      // Nothing is committed: the webhook never sends a request to this port.
      sinks: [
        { type: "sse" },
        { type: "nats", servers: [nats.url] },
        { type: "webhook", url: "http://127.0.0.1:9/", secret: "s".repeat(32) },
      ],
    });
    await waitFor(
      async () =>
        (await metricLines(th, "kubemeta_nats_connected")).join() === 'kubemeta_nats_connected{sink="nats"} 1',
    );
    const lines = await metricLines(th);
    for (const series of [
      "kubemeta_sse_resets_total 0",
      "kubemeta_sse_overflows_total 0",
      'kubemeta_sink_lost_versions_total{sink="nats"} 0',
      'kubemeta_nats_reconnects_total{sink="nats"} 0',
      'kubemeta_nats_connect_failures_total{sink="nats"} 0',
      'kubemeta_nats_skipped_total{reason="oversized",sink="nats"} 0',
      'kubemeta_nats_skipped_total{reason="illegal_node_name",sink="nats"} 0',
      "kubemeta_commit_failures_total 0",
      "kubemeta_store_pruned_updates_total 0",
      ...["all", "shared", "node"].map((stream) => `kubemeta_reader_resets_total{stream="${stream}"} 0`),
      'kubemeta_sse_rejected_total{reason="max_streams"} 0',
      'kubemeta_sse_rejected_total{reason="max_streams_per_client"} 0',
      'kubemeta_sink_delivery_failures_total{sink="nats",step="deliver"} 0',
      'kubemeta_sink_delivery_failures_total{sink="nats",step="read"} 0',
      'kubemeta_sink_delivery_failures_total{sink="webhook",step="save"} 0',
      ...["replay", "reset", "malformed", "refused", "failed", "busy", "unsynced", "stopped"].map(
        (result) => `kubemeta_nats_replay_requests_total{result="${result}",sink="nats"} 0`,
      ),
      'kubemeta_nats_replay_subscription_failures_total{sink="nats"} 0',
      'kubemeta_webhook_deliveries_total{sink="webhook"} 0',
      'kubemeta_webhook_delivered_updates_total{sink="webhook"} 0',
      ...["timeout", "network", "status_3xx", "status_408", "status_4xx", "status_429", "status_5xx"].map(
        (reason) => `kubemeta_webhook_failures_total{reason="${reason}",sink="webhook"} 0`,
      ),
      'kubemeta_webhook_skipped_updates_total{reason="status_4xx",sink="webhook"} 0',
      'kubemeta_webhook_skipped_updates_total{reason="max_retries",sink="webhook"} 0',
    ])
      expect(lines).toContain(series);
  } finally {
    await nats.destroy();
  }
});
