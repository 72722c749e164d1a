/**
 * stop() called from inside a callback, over SSE and NATS, against a real host (and a real nats-server): the calls a
 * reset still had to make (its adds, run in one loop when its state is whole) are not made, nor its onSynced.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { subscribeNats, subscribeSse, type InformerHandlers, type Subscription } from "../client/index.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";
import { client, CLUSTER, natsSink, PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const PODS = 20;
let server: TestNatsServer;
let th: TestHost;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  th = await startTestHost({ cluster: CLUSTER, sinks: [natsSink(server), { type: "sse" }], http: { port: 0 } });
  for (let i = 0; i < PODS; i++) await th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
  await th.changes.flush();
  nc = await client(server);
}, SLOW_MS);
afterAll(async () => {
  await nc?.close();
  await th?.destroy();
  await server?.destroy();
});

/**
 * A subscription (made by `subscribe` with the handlers given) whose first onAdd stops it; every callback is recorded,
 * the stopping one included.
 */
function stoppingAtFirstAdd(subscribe: (handlers: InformerHandlers) => Subscription): {
  subscription: Subscription;
  calls: string[];
} {
  const calls: string[] = [];
  const subscription = subscribe({
    onAdd(object) {
      calls.push(`onAdd ${object.name}`);
      if (calls.length === 1) void subscription.stop();
    },
    onUpdate: (_old, current) => void calls.push(`onUpdate ${current.name}`),
    onDelete: (object) => void calls.push(`onDelete ${object.name}`),
    onSynced: () => void calls.push("onSynced"),
    onError: (error) => void calls.push(`onError ${error.message}`),
  });
  return { subscription, calls };
}

test(
  "over SSE: stop() from the first onAdd of a reset: no callback comes after it",
  async () => {
    const { subscription, calls } = stoppingAtFirstAdd((handlers) =>
      subscribeSse({ url: th.url, streams: ["all"], ...handlers }),
    );
    await subscription.synced;
    await subscription.stop();
    expect(calls).toEqual(["onAdd web-0"]);
    // The cache is the library's: it took the reset whole.
    expect(subscription.objects("all").size).toBe(PODS);
  },
  SLOW_MS,
);

test(
  "over NATS: stop() from the first onAdd of a reset: no callback comes after it",
  async () => {
    const { subscription, calls } = stoppingAtFirstAdd((handlers) =>
      subscribeNats({ nc, prefix: PREFIX, streams: ["all"], ...handlers }),
    );
    await subscription.synced;
    await subscription.stop();
    expect(calls).toEqual(["onAdd web-0"]);
  },
  SLOW_MS,
);

test(
  "over NATS and SSE: a stopped subscription, its cache with it, is not kept while the connection stays open",
  async () => {
    const ROUNDS = 30;
    // The options hold the handlers the cache calls: alive as long as the subscription's cache is.
    const kept = { nats: [] as WeakRef<object>[], sse: [] as WeakRef<object>[] };
    for (let i = 0; i < ROUNDS; i++) {
      const natsOptions = { nc, prefix: PREFIX, streams: ["all"], onSynced() {} };
      const sseOptions = { url: th.url, streams: ["all"], onSynced() {} };
      const subscriptions = [subscribeNats(natsOptions), subscribeSse(sseOptions)];
      kept.nats.push(new WeakRef(natsOptions));
      kept.sse.push(new WeakRef(sseOptions));
      await Promise.all(subscriptions.map((s) => s.synced));
      await Promise.all(subscriptions.map((s) => s.stop()));
    }
    // A collection scans the stack conservatively, so a few may be kept by chance; leaked, every one is.
    const alive = (refs: WeakRef<object>[]) => refs.filter((ref) => ref.deref() !== undefined).length;
    await waitFor(
      async () => {
        Bun.gc(true);
        await Bun.sleep(10);
        return alive(kept.nats) <= 3 && alive(kept.sse) <= 3;
      },
      5_000,
      "all but a few stopped subscriptions to be collected",
    );
  },
  SLOW_MS,
);
