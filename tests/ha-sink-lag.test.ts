/**
 * `kubemeta_sink_lag_versions` of a sink that cannot start on the replica that takes over (host/sink-lag.ts): the host
 * keeps the series, head minus the cursor the store holds, and that cursor is the one the leader before it left, not
 * the one the store held when this replica started following.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { LEASE_MS, setupHa } from "./ha-cluster.ts";
import { SDK } from "./reliability-process.ts";

afterEach(runCleanups);

// Delivers on replica 0; cannot reach its backend on replica 1, which starts it only once it leads.
const auditSink = `
import { consume, defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "audit", description: "Delivers, except on replica 1.", schema: v.strictObject({}),
  create: (_config, ctx) => {
    const consumer = consume(ctx, { async deliver() {} });
    return {
      async start() {
        if (process.argv.some((arg) => arg.endsWith("replica-1.yaml"))) throw new Error("cannot reach its backend");
        await consumer.start();
      },
      stop: () => consumer.stop(),
    };
  },
});`;

test("a sink that cannot start on the new leader: its lag counts from the cursor the old leader left", async () => {
  const env = await setupHa({ replicas: 2, sinks: ["  - { type: ./audit.ts, name: audit }"] });
  cleanups.push(env.destroy);
  await Bun.write(join(env.dir, "audit.ts"), auditSink);
  const { leader, follower } = await env.leaderAndFollower();
  const cursor = () => env.withStore(async (store) => (await store.cursor("sink/audit")) ?? 0);
  const startedAt = await cursor();

  // The leader's sink delivers the churn after the follower read the cursor at its start.
  const churn = startChurn(env.server, { perSecond: 40, seed: 7 });
  await waitFor(async () => (await cursor()) >= startedAt + 50, 20_000, "the leader's sink to deliver 50 more");
  churn.stop();
  await waitFor(
    async () => (await env.metric(leader.url, "kubemeta_sink_lag_versions", { sink: "audit" })) === 0,
    10_000,
    "the leader's sink to deliver all",
  );
  const left = await cursor();
  leader.proc.kill("SIGKILL");
  await env.leading(follower, LEASE_MS + 10_000);

  const lag = () => env.metric(follower.url, "kubemeta_sink_lag_versions", { sink: "audit" });
  const head = async () =>
    ((await (await fetch(`${follower.url}/v1/objects?kind=Namespace`)).json()) as { version: number }).version;
  // The new leader commits more; its sink delivers none of it.
  const more = startChurn(env.server, { perSecond: 40, seed: 8 });
  await waitFor(async () => (await head()) >= left + 20, 20_000, "the new leader to commit 20 more");
  more.stop();
  // Before the fix the lag counted from the cursor read as the follower started: 50 or more too high, for good.
  await waitFor(async () => (await lag()) === (await head()) - left, 10_000, "the lag from the cursor left");
  expect(left).toBeGreaterThanOrEqual(startedAt + 50);
}, 60_000);
