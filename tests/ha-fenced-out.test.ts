/**
 * A kubemeta without `ha` on a store an `ha` deployment writes: the ha leader raises the store's term, and the other's
 * next commit is refused (fenced). It stops its sources and is not ready until restarted; its log moves no more. Its
 * readers are told to come back (SSE `retry`, 503, NATS `ask again later`), to reach a replica that serves the store,
 * rather than wait on a stream that never moves again or be answered from a log the store has left behind.
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "@nats-io/transport-node";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, consumeSse } from "./faults-cluster.ts";
import { service, setupHa, type Replica } from "./ha-cluster.ts";
import { openSse, type SseConnection } from "./sse-client.ts";
import { replay } from "./nats-consumer.ts";
import { startNatsServer } from "./nats-server.ts";

afterEach(runCleanups);

const FENCED = "another kubemeta writes to this store; this one stopped its sources, not ready until restarted";

/** The events a stream got before it ended, failing if it has not ended within 10 s. */
async function endOf(watch: SseConnection): Promise<string[]> {
  cleanups.push(() => watch.close());
  await watch.until(() => watch.isEnded, 10_000, "the stream's end");
  return watch.events.map((event) => event.type);
}

async function served(replica: Replica): Promise<{ epoch: string; version: number }> {
  return (await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
}

test("a kubemeta without ha fenced out by an ha leader tells its readers to come back; they move on", async () => {
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const env = await setupHa({ replicas: 2, withoutHa: [0], sinks: ["  - type: nats", `    servers: ["${nats.url}"]`] });
  cleanups.push(env.destroy);
  const single = await env.start(0);
  await env.ready(single);
  // A Service in front: the single replica while it is ready, the ha one once it is not.
  let endpoints = [single];
  const front = service(() => endpoints);
  cleanups.push(front.stop);
  const consumer = await consumeSse(front.url);
  const live = await openSse(single.url, { stream: "all" });
  cleanups.push(() => live.close());
  const synced = await live.takeUntil("SYNCED", 10_000);
  const before = await served(single);

  const ha = await env.start(1);
  await env.leading(ha);
  env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "after-the-fence" } });
  await waitFor(() => single.out.lines(FENCED).length === 1, 10_000, "the single replica to be fenced");
  expect((await fetch(`${single.url}/readyz`)).status).toBe(503);
  endpoints = [ha];

  // Its open stream ends without an event: the EventSource comes back (`retry`) with its Last-Event-ID.
  expect((await endOf(live)).slice(synced.length)).toEqual([]);
  // A stream that comes to it is told the same, with a position or without (no RESET it would start over from).
  const position = `${before.epoch}:${before.version}`;
  expect(await endOf(await openSse(single.url, { stream: "all" }, { lastEventId: position }))).toEqual([]);
  expect(await endOf(await openSse(single.url, { stream: "all" }))).toEqual([]);
  for (const path of [`/v1/updates?since=${position}`, "/v1/updates", "/v1/objects"]) {
    const response = await fetch(`${single.url}${path}`);
    expect([path, response.status, response.headers.get("retry-after")]).toEqual([path, 503, "5"]);
    expect(((await response.json()) as { error: string }).error).toContain("another kubemeta writes this store");
  }
  // The consumer came back through the Service to the ha replica, and resumed there: the update, no RESET.
  await waitFor(
    () => [...consumer.sub.objects("all").values()].some((e) => e.name === "after-the-fence"),
    20_000,
    "the consumer to get the update committed after the fence",
  );
  expect(consumer.rec.resets()).toBe(0);

  // The ha replica gone, the fenced one alone answers replays: ask again later, whether it holds `from` or not.
  ha.proc.kill("SIGTERM");
  expect(await ha.proc.exited).toBe(0);
  const ahead = `${before.epoch}:${before.version + 1}`;
  const nc = await connect({ servers: nats.url });
  cleanups.push(() => nc.close());
  for (const from of [position, ahead]) {
    const chunks = await replay(nc, "kubemeta.faults.replay", { stream: "all", from }, 5_000, 1);
    expect(chunks.map((chunk) => [chunk.updates.length, chunk.error, chunk.last])).toEqual([
      [0, "this kubemeta serves this store no more: another kubemeta writes this store; ask again later", true],
    ]);
  }
}, 90_000);
