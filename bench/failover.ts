/**
 * Failover, end to end: two kubemeta replicas (real processes) on the test libSQL server, electing a leader with a
 * Lease on the simulated API server, under pod churn. One SSE client on each replica. Prints how far the follower's
 * clients trail the leader's (p50/p99: the follower reads the store every followInterval), then kill -9 of the
 * leader: the time until the standby leads, the longest pause in updates its clients saw, the changes made while
 * nobody led (they wait in the API server's watch history, delayed, not lost), and whether a client saw a RESET.
 *
 *   bun bench/failover.ts [--rate 80] [--seconds 5]      # lease 3 s, renew deadline 2 s, retry 0.5 s
 */
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import type { Envelope } from "../protocol/envelope.ts";
import { subscribeSse } from "../client/index.ts";
import { startChurn } from "../simulator/population.ts";
import { LEASE_MS, setupHa } from "../tests/ha-cluster.ts";

const { values } = parseArgs({
  options: { rate: { type: "string", default: "80" }, seconds: { type: "string", default: "5" } },
});
const seconds = Number(values.seconds);

const env = await setupHa({ replicas: 2 });
try {
  const leader = await env.start(0);
  await env.leading(leader);
  const follower = await env.start(1);
  await env.ready(follower);

  /** Arrival time of each version at a client of each replica, and the RESETs after the first sync. */
  const arrivals = [new Map<number, number>(), new Map<number, number>()] as const;
  let resets = 0;
  const clients = [leader, follower].map((replica, i) => {
    let synced = false;
    const seen = arrivals[i]!;
    const record = (e: Envelope) => {
      if (!seen.has(e.version)) seen.set(e.version, performance.now());
    };
    return subscribeSse({
      url: replica.url,
      streams: ["all"],
      reconnect: { initialMs: 50, maxMs: 300 },
      onAdd: record,
      onUpdate: (_old, e) => record(e),
      onDelete: record,
      onReset: () => {
        if (synced) resets++;
      },
      onSynced: () => {
        synced = true;
      },
    });
  });
  await Promise.all(clients.map((c) => c.synced));

  const churn = startChurn(env.server, { perSecond: Number(values.rate), seed: 7 });
  await Bun.sleep(seconds * 1000);
  const lags = [...arrivals[1]]
    .flatMap(([version, at]) => {
      const first = arrivals[0].get(version);
      return first === undefined ? [] : [at - first];
    })
    .sort((a, b) => a - b);
  const quantile = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? NaN;

  const changesAtKill = churn.changes();
  leader.proc.kill("SIGKILL");
  const killedAt = performance.now();
  await env.leading(follower, LEASE_MS + 30_000);
  const failoverMs = performance.now() - killedAt;
  const changesWhileLeaderless = churn.changes() - changesAtKill;
  await Bun.sleep(seconds * 1000);
  churn.stop();

  const times = [...arrivals[1].values()].sort((a, b) => a - b);
  let longestPause = 0;
  for (let i = 1; i < times.length; i++) longestPause = Math.max(longestPause, times[i]! - times[i - 1]!);
  for (const client of clients) client.stop();

  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}); churn ${values.rate} changes/s`);
  console.log(
    `follower trails the leader (${lags.length} updates): p50 ${quantile(0.5).toFixed(0)} ms, ` +
      `p99 ${quantile(0.99).toFixed(0)} ms`,
  );
  console.log(`failover after kill -9: ${failoverMs.toFixed(0)} ms to a new leader (lease ${LEASE_MS} ms)`);
  console.log(`longest pause in updates at the survivor's client: ${longestPause.toFixed(0)} ms`);
  console.log(`changes made while nobody led (delayed, then delivered): ${changesWhileLeaderless}`);
  console.log(`RESETs seen by clients after their first sync: ${resets}`);
} finally {
  await env.destroy();
}
