/**
 * A filtered /v1/watch stream (`namespace`, `kinds`) whose latest updates are all of other namespaces or kinds: its
 * event id moves past them (an id alone, each heartbeat, and as the stream ends at a stop), so that it resumes after
 * a kubemeta restart without a reset, though retention removed updates after its last matching one. Without that, a
 * UI following a quiet kind is reset by every restart once enough other updates flowed.
 */
import { afterEach, expect, test } from "bun:test";
import { subscribeSse, type Subscription } from "../client/index.ts";
import { recorder } from "./client-recorder.ts";
import { SseConnection } from "./sse-client.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";

const hosts: TestHost[] = [];
const subscriptions: Subscription[] = [];
const connections: SseConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const s of subscriptions.splice(0)) await s.stop();
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(options: { dir?: string; port?: number } = {}): Promise<TestHost> {
  const th = await startTestHost({
    dir: options.dir,
    sinks: [{ type: "sse", heartbeat: "50ms" }],
    http: { port: options.port ?? 0 },
    retention: { maxUpdates: 2, interval: "50ms" },
  });
  hosts.push(th);
  return th;
}

/** Rounds of changes to one pod of the `default` namespace: retention removes all but the last few. */
async function elsewhere(th: TestHost, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++)
    await th.changes.apply("pods", "ADDED", rawPod("web-1", { labels: { round: `${round}` } }));
  await th.changes.flush();
}

test("a filtered stream's id follows its reading past updates it does not take, each heartbeat", async () => {
  const th = await host();
  await th.changes.apply("pods", "ADDED", rawPod("api-1", { namespace: "payments" }));
  await th.changes.flush();
  const watch = await SseConnection.open(`${th.url}/v1/watch?stream=all&namespace=payments`);
  connections.push(watch);
  await waitFor(() => watch.lastEventId === `${th.host.epoch}:1`, 5_000, "the SYNCED");
  await elsewhere(th, 10);
  await waitFor(
    () => watch.lastEventId === `${th.host.epoch}:${th.host.log.head()}`,
    5_000,
    "the id to reach the head",
  );
  expect(watch.events.map((e) => e.type)).toEqual(["RESET", "ADDED", "SYNCED"]);
});

test("the client library, filtered, resumes after a restart: no reset, though retention passed its match", async () => {
  const first = await host();
  await first.changes.apply("pods", "ADDED", rawPod("api-1", { namespace: "payments" }));
  await first.changes.flush();
  const r = recorder();
  const subscription = subscribeSse({
    url: first.url,
    streams: ["all"],
    namespace: "payments",
    reconnect: { initialMs: 20, maxMs: 100 },
    ...r.handlers,
  });
  subscriptions.push(subscription);
  await subscription.synced;
  await elsewhere(first, 10);
  await waitFor(() => first.host.log.oldest() > 2, 5_000, "retention to remove updates after the last match");

  await first.stop();
  hosts.splice(hosts.indexOf(first), 1);
  const second = await host({ dir: first.dir, port: Number(new URL(first.url).port) });
  await second.changes.apply("pods", "ADDED", rawPod("api-2", { namespace: "payments" }));
  await second.changes.flush();
  await waitFor(() => r.view.size === 2, 10_000, "the update after the restart");
  expect(r.resets).toHaveLength(1);
  expect(r.calls).toEqual(["ADDED api-1", "ADDED api-2"]);
});
