/**
 * A network partition between the leader and the store only: the leader still reaches the API server (its Lease
 * renewed, its watches running) and no longer the store, which the other replicas still read. It stays the leader,
 * says it is not ready while its commits fail, and commits everything it holds once the path is back; the standby
 * stays ready (it reads the store) and does not take over.
 */
import { afterEach, expect, test } from "bun:test";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { LEASE_MS, setupHa, type Replica } from "./ha-cluster.ts";
import { consumeSse, expectConverged } from "./ha-checks.ts";

afterEach(runCleanups);

async function readiness(replica: Replica): Promise<{ status: number; waiting: string[] }> {
  const response = await fetch(`${replica.url}/readyz`);
  return { status: response.status, waiting: ((await response.json()) as { waiting: string[] }).waiting };
}

test("the leader cut off from the store only keeps the Lease, is not ready, and commits it all once back", async () => {
  // A path that drops packets fails a request after the store's timeout: 2 s, so that the partition shows soon.
  const env = await setupHa({ replicas: 2, storePaths: true, storeTimeout: "2s" });
  cleanups.push(env.destroy);
  const leader = await env.start(0);
  await env.leading(leader);
  const standby = await env.start(1);
  await env.ready(standby);
  const consumer = await consumeSse(standby.url);
  const churn = startChurn(env.server, { perSecond: 40, seed: 21 });
  cleanups.push(async () => churn.stop());
  await waitFor(
    async () => (await env.metric(leader.url, "kubemeta_updates_committed_total")) ?? 0,
    10_000,
    "a commit",
  );

  env.storePaths[0]!.partition();
  const partitionedAt = Date.now();
  const notWritable = await waitFor(
    async () => {
      const { status, waiting } = await readiness(leader);
      return status === 503 && waiting.find((reason) => reason.startsWith("store not writable: "));
    },
    10_000,
    "the leader to say the store is not writable",
  );
  console.log(`the leader, cut off: ${notWritable}`);
  // Past twice the Lease's duration the leader still holds it, renewed; the standby stays ready, following.
  const standbyReadiness: number[] = [];
  await waitFor(
    async () => {
      standbyReadiness.push((await readiness(standby)).status);
      expect((await readiness(leader)).status).toBe(503);
      const lease = env.server.get("Lease", "default", "kubemeta") as {
        spec: { holderIdentity: string; renewTime: string };
      };
      expect(lease.spec.holderIdentity).toBe(leader.identity);
      return Date.parse(lease.spec.renewTime) > partitionedAt + 2 * LEASE_MS;
    },
    4 * LEASE_MS,
    "the Lease renewed twice its duration after the partition",
  );
  expect(new Set(standbyReadiness)).toEqual(new Set([200]));
  expect(standby.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
  expect(await env.metric(leader.url, "kubemeta_ha_leader")).toBe(1);
  expect(await env.metric(standby.url, "kubemeta_ha_leader")).toBe(0);

  env.storePaths[0]!.heal();
  await env.ready(leader, 10_000);
  churn.stop();
  await expectConverged(env, leader, [consumer]);
  await waitFor(() => env.matchesTruth(standby.url), 10_000, "the standby to equal the API server too");
  expect(leader.out.lines("no longer leading; following the store")).toEqual([]);
  expect(await env.metric(leader.url, "kubemeta_ha_terms_total")).toBe(1);
}, 60_000);
