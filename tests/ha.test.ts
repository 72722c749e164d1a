/**
 * High availability end to end (issue 11): two kubemeta replicas as real processes on one remote store, churn, and
 * the leader killed (kill -9) or paused past its Lease (SIGSTOP). Each run ends with the store equal to the API
 * server's truth, its versions gap-free with whole prev chains, and the consumers (SSE on the surviving replica, NATS)
 * having applied every version once, with no RESET: a failover is invisible to them.
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "@nats-io/transport-node";
import { createClient } from "@libsql/client";
import { subscribeNats } from "../client/index.ts";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, expectFollowedWholly, recorder, runCleanups, consumeSse } from "./faults-cluster.ts";
import { LEASE_MS, STORE_TOKEN, setupHa, type Replica } from "./ha-cluster.ts";
import { expectConverged as convergedWith, expectNobodyContends, fieldsReadmeLeavesOut } from "./ha-checks.ts";
import { startNatsServer } from "./nats-server.ts";

afterEach(runCleanups);

const LEADING = "leading: this replica writes the store and runs the sources";

/** Two replicas, the first leading, and an SSE consumer of `all` synced on the standby. */
async function leaderAndStandby(sinks?: string[]) {
  const env = await setupHa({ replicas: 2, sinks });
  cleanups.push(env.destroy);
  const first = await env.start(0);
  await env.leading(first);
  const standby = await env.start(1);
  await env.ready(standby);
  return { env, first, standby, consumer: await consumeSse(standby.url) };
}

/** Churn stopped: `replica` equals the API server, the log is whole, and the SSE consumer applied all of it once. */
const expectConverged = ({ env, consumer }: Awaited<ReturnType<typeof leaderAndStandby>>, replica: Replica) =>
  convergedWith(env, replica, [consumer]);

test("kill -9 of the leader during churn: the standby takes over; SSE and NATS see no reset", async () => {
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const cluster = await leaderAndStandby(["  - type: nats", `    servers: ["${nats.url}"]`]);
  const { env, first, standby } = cluster;
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  cleanups.push(() => nc.close());
  const natsRec = recorder();
  const natsSub = subscribeNats({
    nc,
    cluster: "faults",
    streams: ["all"],
    retry: { maxMs: 300 },
    ...natsRec.handlers,
  });
  cleanups.push(() => natsSub.stop());
  await natsSub.synced;

  const churn = startChurn(env.server, { perSecond: 80, seed: 11 });
  const published = async (replica: Replica) => (await env.metric(replica.url, "kubemeta_nats_published_total")) ?? 0;
  const served = async (replica: Replica) =>
    ((await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as { version: number }).version;
  // Only the leader publishes; the standby serves readers only, and has nothing to deliver (no lag): checked once the
  // standby has read what the leader published, so that it would have published it too.
  await waitFor(async () => (await published(first)) > 0, 10_000, "the leader to publish the churn");
  const publishedThrough = await served(first);
  await waitFor(async () => (await served(standby)) >= publishedThrough, 10_000, "the standby to follow it");
  expect(await published(standby)).toBe(0);
  expect((await env.metric(standby.url, "kubemeta_sink_lag_versions", { sink: "nats" })) ?? 0).toBe(0);
  env.server.resetRequests();
  first.proc.kill("SIGKILL");
  const killedAt = performance.now();
  // The Lease expires (3 s) and the standby takes it at its next try; how long a failover takes is
  // bench/failover.ts's to measure.
  await env.leading(standby, LEASE_MS + 10_000);
  console.log(`failover after kill -9: ${(performance.now() - killedAt).toFixed(0)} ms (lease ${LEASE_MS} ms)`);
  // The survivor publishes the churn that goes on.
  await waitFor(async () => (await published(standby)) > 0, 10_000, "the new leader to publish");
  churn.stop();

  const updates = await expectConverged(cluster, standby);
  await expectFollowedWholly(natsRec, natsSub, updates, await env.storeState());
  // The survivor resumed every watch from the stored resourceVersions: not one LIST after it took over.
  const lists = Object.keys(env.server.requests()).filter((request) => request.startsWith("list "));
  expect(lists).toEqual([]);
  expect(standby.out.text).not.toContain('"level":"error"');
}, 90_000);

test("the leader paused past its Lease (SIGSTOP) commits nothing once resumed, and steps down to follow", async () => {
  const cluster = await leaderAndStandby();
  const { env, first, standby } = cluster;
  const churn = startChurn(env.server, { perSecond: 80, seed: 12 });
  await Bun.sleep(1_000);
  first.proc.kill("SIGSTOP");
  await env.leading(standby, LEASE_MS + 10_000);
  // The paused leader still holds changes it received before the pause, and its timers fire as soon as it runs.
  await Bun.sleep(1_000);
  first.proc.kill("SIGCONT");
  const stepDown = await first.out.waitFor(/"msg":"no longer leading; following the store".*/, 15_000);
  console.log(`the paused leader, resumed: ${stepDown[0]}`);
  await env.ready(first);
  await Bun.sleep(1_000);
  churn.stop();

  await expectConverged(cluster, standby);
  await waitFor(() => env.matchesTruth(first.url), 10_000, "the deposed leader, following, to equal it too");
  // Whatever it tried after the pause was refused by the store (fenced) or never tried (the Lease was lost first):
  // had it committed, the new leader's next commit would have been refused, and either would have logged it.
  for (const replica of [first, standby]) expect(replica.out.lines("store commit failed; retrying")).toEqual([]);
}, 90_000);

test("SIGTERM of the leader releases the Lease: the standby leads before the Lease would have expired", async () => {
  const cluster = await leaderAndStandby();
  const { env, first, standby } = cluster;
  const churn = startChurn(env.server, { perSecond: 80, seed: 13 });
  // Who leads is in /metrics, for an alert on no leader or on a flapping one (the Lease's requests counted beside:
  // tests/ha-lease-requests.test.ts).
  const leaderMetrics = async (replica: Replica) =>
    (await (await fetch(`${replica.url}/metrics`)).text())
      .split("\n")
      .filter((l) => /^kubemeta_ha_(leader|terms)/.test(l));
  // And why terms ended, by reason: a rise of store_not_writable is a leader cut off from the store (it hands over).
  const noTermEnded = ["lease_lost", "fenced", "store_not_writable"].map(
    (reason) => `kubemeta_ha_terms_ended_total{reason="${reason}"} 0`,
  );
  expect(await leaderMetrics(first)).toEqual(["kubemeta_ha_leader 1", "kubemeta_ha_terms_total 1", ...noTermEnded]);
  expect(await leaderMetrics(standby)).toEqual(["kubemeta_ha_leader 0", "kubemeta_ha_terms_total 0", ...noTermEnded]);
  await Bun.sleep(1_000);
  first.proc.kill("SIGTERM");
  const stoppedAt = performance.now();
  expect(await first.proc.exited).toBe(0);
  // It gave the Lease back on its way out (emptied, as client-go's release): the standby need not wait out its
  // duration, and takes it at its next try (tests/leader-election.test.ts counts the standby's reads to show it).
  await first.out.all();
  expect(first.out.lines("released the Lease")).toHaveLength(1);
  expect(first.out.lines("cannot release the Lease; a standby takes it over once it expires")).toEqual([]);
  await env.leading(standby, LEASE_MS + 10_000);
  const takeoverMs = performance.now() - stoppedAt;
  console.log(`takeover after SIGTERM: ${takeoverMs.toFixed(0)} ms (lease ${LEASE_MS} ms)`);
  // What the release is for (README, High availability): a rolling update does not wait out the Lease.
  expect(takeoverMs).toBeLessThan(LEASE_MS);
  expect(await leaderMetrics(standby)).toEqual(["kubemeta_ha_leader 1", "kubemeta_ha_terms_total 1", ...noTermEnded]);
  await Bun.sleep(1_000);
  churn.stop();
  await expectConverged(cluster, standby);
}, 60_000);

test("SIGTERM of the leader while the store is down: out of time, it still releases the Lease", async () => {
  const env = await setupHa({ replicas: 1, settings: ["shutdownTimeout: 2s"] });
  cleanups.push(env.destroy);
  const first = await env.start(0);
  await env.leading(first);
  await env.ready(first);
  await env.store.stop();
  const churn = startChurn(env.server, { perSecond: 40, seed: 16 });
  cleanups.push(async () => churn.stop());
  await first.out.waitFor(/"msg":"store commit failed; retrying"/, 10_000);
  first.proc.kill("SIGTERM");
  expect(await first.proc.exited).toBe(1);
  await first.out.all();
  expect(first.out.lines("shutdown timed out; exiting without committing what is pending")).toHaveLength(1);
  // A standby need not wait out the Lease's duration (README, High availability).
  expect(first.out.lines("released the Lease")).toHaveLength(1);
}, 60_000);

test("a leader fenced by a writer without the Lease leads again at once; fenced again, steps down", async () => {
  const cluster = await leaderAndStandby();
  const { env, first, standby } = cluster;
  const churn = startChurn(env.server, { perSecond: 80, seed: 14 });
  await Bun.sleep(500);
  // A deposed replica's ask for the writer's term that landed late, after this leader's: it holds no Lease.
  await env.withStore((store) => store.lead());
  await first.out.waitFor(/"msg":"fenced while holding the Lease; taking the store's writer's term again"/, 10_000);
  await waitFor(() => first.out.lines(LEADING).length === 2, 10_000, "the leader's second term");
  expect(first.out.lines("no longer leading; following the store")).toEqual([]);
  expect(await env.metric(first.url, "kubemeta_ha_terms_ended_total", { reason: "fenced" })).toBe(1);
  // Was: it handed the Lease over, and the store went unwritten until the standby's next try and term's start.
  expect(standby.out.lines(LEADING)).toEqual([]);
  // Fenced again in the same Lease: a writer that keeps taking the store; the Lease is handed over.
  await env.withStore((store) => store.lead());
  const stepDown = await first.out.waitFor(/"msg":"no longer leading; following the store".*/, 10_000);
  expect(stepDown[0]).toContain('"reason":"fenced"');
  expect(fieldsReadmeLeavesOut(first.out.lines("no longer leading; following the store")[0]!)).toEqual([]);
  // What to look for if it happens again and again: a writer that does not contend for this Lease.
  expect(stepDown[0]).toContain("another kubemeta writes this store without this Lease");
  expect(stepDown[0]).toContain("or another replica has this one's ha.identity");
  await env.leading(standby, LEASE_MS + 10_000);
  await Bun.sleep(1_000);
  churn.stop();
  await expectConverged(cluster, standby);
}, 60_000);

test("the leader killed while the store is down: the standby, unable to read it, does not take the Lease", async () => {
  const { env, first, standby } = await leaderAndStandby();
  await env.store.stop();
  first.proc.kill("SIGKILL");
  // Past the Lease's expiry the standby could take it; it cannot become the writer, and took it and gave it back
  // every backoff step, each logged, for as long as the store was away.
  const quietUntil = performance.now() + 3 * LEASE_MS;
  await waitFor(
    () => {
      const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity?: string } };
      expect(lease.spec.holderIdentity).toBe(first.identity);
      expect(standby.out.lines("cannot become the store's writer; following again")).toEqual([]);
      return performance.now() > quietUntil;
    },
    4 * LEASE_MS,
    "three Lease durations without the store",
  );
  expect(standby.out.lines("not contending for the Lease until the store can be read")).toHaveLength(1);
  expect(await env.metric(standby.url, "kubemeta_ha_terms_total")).toBe(0);
}, 60_000);

test("the store down for every replica: the leader ends its term; no one takes the Lease, unable to read", async () => {
  const { env, first, standby } = await leaderAndStandby();
  const churn = startChurn(env.server, { perSecond: 40, seed: 18 });
  cleanups.push(async () => churn.stop());
  await env.store.stop();
  const stepDown = await waitFor(
    () => first.out.lines("no longer leading; following the store")[0],
    LEASE_MS + 10_000,
    "the leader to end its term",
  );
  expect(stepDown.reason).toBe("store not writable");
  // What it gave up (`uncommittedUpdates`: the churn since the store went) and why, each field as README names it.
  expect(stepDown.uncommittedUpdates).toBeGreaterThan(0);
  expect(fieldsReadmeLeavesOut(stepDown)).toEqual([]);
  await waitFor(() => first.out.lines("released the Lease").length === 1, 5_000, "the Lease given back");
  // Neither could become the writer: neither takes the Lease to give it back (they did so in turn, every backoff
  // step, each logged), and each says once why it waits.
  await expectNobodyContends(env, [first, standby], LEASE_MS);
  expect(await env.metric(first.url, "kubemeta_ha_terms_total")).toBe(1);
  expect(await env.metric(standby.url, "kubemeta_ha_terms_total")).toBe(0);
}, 60_000);

/** Two replicas, the first leading and the second ready, under churn; no consumer. */
async function twoReplicasUnderChurn(seed: number) {
  const env = await setupHa({ replicas: 2 });
  cleanups.push(env.destroy);
  const first = await env.start(0);
  await env.leading(first);
  const standby = await env.start(1);
  await env.ready(standby);
  const churn = startChurn(env.server, { perSecond: 40, seed });
  cleanups.push(async () => churn.stop());
  return { env, first, standby };
}

test("a store replaced under the replicas (another epoch and writer): each stops, exit 1, saying why", async () => {
  const { env, first, standby } = await twoReplicasUnderChurn(15);
  // What a wiped store looks like to replicas that keep running once another replica, restarted, has made it anew:
  // another epoch, and that replica's term.
  const client = createClient({ url: env.store.url, authToken: STORE_TOKEN });
  await client.execute("UPDATE meta SET epoch = 'replacedepoch00001', term = term + 1 WHERE id = 1");
  client.close();
  for (const replica of [standby, first]) {
    expect(await replica.proc.exited).toBe(1);
    const [line] = replica.out.lines("stopping: the store was replaced under this replica");
    expect(JSON.stringify(line?.error)).toContain("its epoch is now replacedepoch00001");
  }
  // Started again, a replica serves the store as it is now.
  const again = await env.start(0);
  await env.leading(again);
  const objects = (await (await fetch(`${again.url}/v1/objects`)).json()) as { epoch: string };
  expect(objects.epoch).toBe("replacedepoch00001");
}, 60_000);

test("a store emptied under the replicas: the leader's commits are refused, and each stops, exit 1", async () => {
  const { env, first, standby } = await twoReplicasUnderChurn(16);
  const client = createClient({ url: env.store.url, authToken: STORE_TOKEN });
  await client.execute("DROP TABLE meta");
  client.close();
  for (const replica of [standby, first]) {
    expect(await replica.proc.exited).toBe(1);
    const [line] = replica.out.lines("stopping: the store was replaced under this replica");
    expect(JSON.stringify(line?.error)).toContain("its epoch is gone (the store is empty)");
  }
  expect(first.out.lines("store commit failed; retrying")).toEqual([]);
  // No writer raised the store's term: the leader does not ask for it again (the ask fails on a store without tables).
  expect(first.out.lines("fenced while holding the Lease; taking the store's writer's term again")).toEqual([]);
  expect(first.out.lines("cannot become the store's writer; following again")).toEqual([]);
}, 60_000);

test("a store gone back under the replicas (a copy restored in place, its epoch kept): each stops", async () => {
  const { env, first, standby } = await twoReplicasUnderChurn(18);
  await waitFor(async () => (await fetch(`${standby.url}/v1/updates?limit=1`)).ok, 10_000, "the standby serving");
  // The last 40 versions undone, as a copy taken two seconds ago holds them: versions both replicas have served.
  const client = createClient({ url: env.store.url, authToken: STORE_TOKEN });
  await client.batch(
    [
      "DELETE FROM updates WHERE version > (SELECT head - 40 FROM meta WHERE id = 1)",
      "UPDATE meta SET head = head - 40 WHERE id = 1",
    ],
    "write",
  );
  client.close();
  // Neither goes on numbering the copy's versions after its head again, for other updates, under the same epoch.
  const exited = (replica: Replica) => Promise.race([replica.proc.exited, Bun.sleep(15_000).then(() => "running")]);
  expect(await exited(first)).toBe(1);
  expect(await exited(standby)).toBe(1);
  const [line] = standby.out.lines("stopping: the store was replaced under this replica");
  expect(JSON.stringify(line?.error)).toMatch(/its head is \d+, below this process's log \(\d+\), in its epoch/);
}, 60_000);

test("a follower that cannot read the store answers a position ahead of it with 'retry', not a RESET", async () => {
  const { env, first, standby } = await twoReplicasUnderChurn(17);
  const headOf = async (replica: Replica) =>
    (await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
  // The standby stops following (paused) while the leader commits on; then the store goes down.
  standby.proc.kill("SIGSTOP");
  const paused = await headOf(first);
  const ahead = await waitFor(
    async () => {
      const now = await headOf(first);
      return now.version >= paused.version + 5 ? now : undefined;
    },
    10_000,
    "the leader to commit past the paused standby",
  );
  await env.store.stop();
  standby.proc.kill("SIGCONT");
  await waitFor(
    async () => JSON.stringify(await (await fetch(`${standby.url}/readyz`)).json()).includes("store not readable"),
    10_000,
    "the standby to find the store unreadable",
  );
  const position = `${ahead.epoch}:${ahead.version}`;

  const updates = await fetch(`${standby.url}/v1/updates?since=${position}`);
  expect(updates.status).toBe(503);
  expect(updates.headers.get("retry-after")).toBe("5");
  expect(((await updates.json()) as { error: string }).error).toContain("cannot read the store");

  // An EventSource keeps its Last-Event-ID and comes back after `retry`; a RESET would have it drop its state.
  const watch = await fetch(`${standby.url}/v1/watch?stream=all`, {
    headers: { accept: "text/event-stream", "last-event-id": position },
    signal: AbortSignal.timeout(10_000),
  });
  const body = await watch.text();
  expect(body).toContain("retry: 5000");
  expect(body).not.toContain("RESET");
}, 60_000);
