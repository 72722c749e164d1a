/**
 * A network partition between the leader and the store only: the leader still reaches the API server (its Lease
 * renewed, its watches running) and no longer the store, which the standby still reaches. Once its commits have
 * failed for longer than the Lease's duration, it ends its term and gives the Lease back; the standby leads and
 * commits during the partition; the cut-off replica follows, unready while it cannot read the store, and catches up
 * once the path is back. Nothing committed is lost or written twice, and no consumer sees a RESET. A follower cut off
 * the same way, its read of the store hanging, tells a consumer that comes with a position ahead of it to come back.
 * Over `http://`, and the first and third also over `ws://` (a commit hung, a read hung): a WebSocket's requests are
 * bounded by store.timeout as an HTTP request is, which the other three would check again at 10-15 s each.
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "@nats-io/transport-node";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, consumeSse } from "./faults-cluster.ts";
import { LEASE_MS, TAKEOVER_MS, setupHa, type HaOptions, type Replica } from "./ha-cluster.ts";
import { expectConverged, expectNobodyContends, readiness } from "./ha-checks.ts";
import { openSse } from "./sse-client.ts";
import { replay } from "./nats-consumer.ts";
import { startNatsServer } from "./nats-server.ts";

afterEach(runCleanups);

/** The tests over both of the remote store's protocols, Hrana over HTTP and over WebSocket, and over HTTP alone. */
const STORE_SCHEMES = ["http", "ws"] as const;
const HTTP_ONLY = ["http"] as const;

/** `replicas` behind store paths a test cuts, speaking `storeScheme` to the store; destroyed after the test. */
async function partitionable(
  replicas: number,
  storeScheme: HaOptions["storeScheme"],
  options: Partial<HaOptions> = {},
) {
  const env = await setupHa({ replicas, storePaths: true, storeScheme, ...options });
  cleanups.push(env.destroy);
  return env;
}

test.each(STORE_SCHEMES)(
  "the leader cut off from the store only ends its term past the Lease's duration; the standby leads (%s)",
  async (storeScheme) => {
    // A path that drops packets fails a request after the store's timeout: 2 s, so that the partition shows soon.
    const env = await partitionable(2, storeScheme, { storeTimeout: "2s" });
    const cutOff = await env.start(0);
    await env.leading(cutOff);
    const standby = await env.start(1);
    await env.ready(standby);
    const consumers = [await consumeSse(standby.url), await consumeSse(cutOff.url)];
    const churn = startChurn(env.server, { perSecond: 40, seed: 21 });
    cleanups.push(async () => churn.stop());
    await waitFor(
      async () => (await env.metric(cutOff.url, "kubemeta_updates_committed_total")) ?? 0,
      10_000,
      "a commit",
    );

    env.storePaths[0]!.partition();
    const partitionedAt = performance.now();
    const stepDown = await waitFor(
      () => cutOff.out.lines("no longer leading; following the store")[0],
      LEASE_MS + 10_000,
      "the cut-off leader to end its term",
    );
    const stepDownMs = performance.now() - partitionedAt;
    console.log(`the leader, cut off, ended its term after ${stepDownMs.toFixed(0)} ms: ${JSON.stringify(stepDown)}`);
    // The cut-off replica follows the store, which it cannot read: unready, as a follower (README, High availability),
    // from the end of its term on, not once its first read has waited out store.timeout.
    expect((await readiness(cutOff)).waiting).toEqual([expect.stringMatching(/^store not readable: .*store\.timeout/)]);
    expect(stepDown.reason).toBe("store not writable");
    expect(stepDown.commitsFailingMs as number).toBeGreaterThan(LEASE_MS);
    expect(stepDown.error).toContain("(store.timeout)");
    expect(await env.metric(cutOff.url, "kubemeta_ha_terms_ended_total", { reason: "store_not_writable" })).toBe(1);
    expect(await env.metric(cutOff.url, "kubemeta_ha_leader")).toBe(0);

    // It gave the Lease back: the standby leads at its next try, and commits the churn while the path is still cut.
    await env.leading(standby, TAKEOVER_MS);
    await waitFor(
      async () => (await env.metric(standby.url, "kubemeta_updates_committed_total")) ?? 0,
      10_000,
      "the standby to commit the churn",
    );
    expect(await env.metric(standby.url, "kubemeta_ha_leader")).toBe(1);
    // Past its wait (a Lease's duration) it contends again, and does not take the Lease from the standby that
    // renews it.
    const contendsAgainAt = performance.now() + LEASE_MS + 1_000;
    await waitFor(
      async () => {
        expect((await readiness(cutOff)).status).toBe(503);
        const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity: string } };
        expect(lease.spec.holderIdentity).toBe(standby.identity);
        return performance.now() > contendsAgainAt;
      },
      2 * LEASE_MS,
      "the cut-off replica to contend again",
    );
    expect(cutOff.out.lines("leading: this replica writes the store and runs the sources")).toHaveLength(1);
    expect(env.storePaths[0]!.partitioned).toBe(true);

    env.storePaths[0]!.heal();
    await env.ready(cutOff, 10_000);
    churn.stop();
    await expectConverged(env, standby, consumers);
    await waitFor(() => env.matchesTruth(cutOff.url), 10_000, "the cut-off replica to equal the API server too");
    expect(cutOff.out.lines("no longer leading; following the store")).toHaveLength(1);
    for (const replica of [cutOff, standby]) expect(await env.metric(replica.url, "kubemeta_ha_terms_total")).toBe(1);
  },
  60_000,
);

test.each(HTTP_ONLY)(
  "a lone replica cut off from the store ends its term once, takes no Lease until it reads the store (%s)",
  async (storeScheme) => {
    const env = await partitionable(1, storeScheme, { storeTimeout: "2s" });
    const only = await env.start(0);
    await env.leading(only);
    const churn = startChurn(env.server, { perSecond: 40, seed: 22 });
    cleanups.push(async () => churn.stop());
    env.storePaths[0]!.partition();
    const stepDown = await waitFor(
      () => only.out.lines("no longer leading; following the store")[0],
      LEASE_MS + 10_000,
      "the leader to end its term",
    );
    expect(stepDown.reason).toBe("store not writable");
    // It has nobody to hand the Lease to: it gave it back and, unable to read the store, leaves it be (it took it back
    // a Lease's duration later, failed to become the writer and gave it back again, every backoff step, each logged).
    await waitFor(() => only.out.lines("released the Lease").length === 1, 5_000, "the Lease given back");
    await expectNobodyContends(env, [only], LEASE_MS, async () => {
      expect(only.out.lines("acquired the Lease; leading")).toHaveLength(1);
      expect((await readiness(only)).status).toBe(503);
    });
    // Once it reads the store again it contends, leads and commits.
    env.storePaths[0]!.heal();
    await waitFor(
      () => only.out.lines("leading: this replica writes the store and runs the sources").length === 2,
      10_000,
      "a second term",
    );
    await env.ready(only, 10_000);
    churn.stop();
    await waitFor(() => env.matchesTruth(only.url), 10_000, "the replica to equal the API server");
    expect(await env.metric(only.url, "kubemeta_ha_terms_total")).toBe(2);
  },
  60_000,
);

test.each(STORE_SCHEMES)(
  "a follower whose reads of the store hang answers a position ahead of it with 'retry', not a RESET (%s)",
  async (storeScheme) => {
    // The store's timeout (60 s) keeps the follower's read of the store waiting for the whole test.
    const env = await partitionable(2, storeScheme);
    const { leader, follower } = await env.leaderAndFollower();
    const served = async (replica: Replica) =>
      (await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
    const before = await served(leader);
    await waitFor(async () => (await served(follower)).version === before.version, 10_000, "the follower to follow");

    env.storePaths[1]!.partition();
    for (let i = 0; i < 3; i++)
      env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `moved-${i}` } });
    const ahead = await waitFor(
      async () => {
        const now = await served(leader);
        return now.version >= before.version + 3 ? now : undefined;
      },
      10_000,
      "the leader to commit past the follower",
    );
    // A consumer of the leader moves to the follower with the position it holds: the follower cannot tell whether the
    // store has it (its read hangs), so the consumer is to come back, as while the store is down, not to start over.
    const position = `${ahead.epoch}:${ahead.version}`;
    const watch = await openSse(follower.url, { stream: "all" }, { lastEventId: position });
    cleanups.push(() => watch.close());
    await watch.until(() => watch.isEnded || watch.events.length > 0, 10_000, "the stream's end or an event");
    // The stream ends without an event (its `retry: 5000` has the EventSource come back with its Last-Event-ID).
    expect(watch.events.map((event) => event.type)).toEqual([]);
    expect(watch.isEnded).toBe(true);
    const updates = await fetch(`${follower.url}/v1/updates?since=${position}`, {
      signal: AbortSignal.timeout(10_000),
    });
    expect(updates.status).toBe(503);
    expect(updates.headers.get("retry-after")).toBe("5");
    expect(((await updates.json()) as { error: string }).error).toContain("cannot read the store");

    // Once the path is back, the same position resumes there: no RESET, the next update is the one after it.
    env.storePaths[1]!.heal();
    await waitFor(async () => (await served(follower)).version >= ahead.version, 70_000, "the follower to catch up");
    const resumed = await fetch(`${follower.url}/v1/updates?since=${position}`);
    expect(resumed.status).toBe(200);
  },
  120_000,
);

test.each(HTTP_ONLY)(
  "a follower whose reads of the store hang stops contending: a standby that reaches the store leads (%s)",
  async (storeScheme) => {
    // The store's timeout (60 s) keeps the cut-off follower's read waiting: it has failed nothing when the leader dies.
    const env = await partitionable(3, storeScheme);
    const leader = await env.start(0);
    await env.leading(leader);
    const [cutOff, standby] = [await env.start(1), await env.start(2)];
    for (const replica of [cutOff, standby]) await env.ready(replica);

    env.storePaths[1]!.partition();
    const unanswered = await waitFor(
      async () => (await readiness(cutOff)).waiting.find((reason) => reason.includes("no answer from the store")),
      LEASE_MS + 5_000,
      "the cut-off follower to count its read unanswered",
    );
    expect(unanswered).toStartWith("store not readable: ");
    await waitFor(
      () => cutOff.out.lines("not contending for the Lease until the store can be read").length === 1,
      5_000,
      "the cut-off follower to stop contending",
    );
    // The leader dies: the Lease goes to the standby, not to the replica that would hold it for store.timeout while
    // its term's first write waits for an answer.
    leader.proc.kill("SIGKILL");
    await env.leading(standby, TAKEOVER_MS);
    expect(cutOff.out.lines("acquired the Lease; leading")).toEqual([]);

    env.storePaths[1]!.heal();
    await env.ready(cutOff, 10_000);
    await waitFor(() => env.matchesTruth(cutOff.url), 10_000, "the cut-off follower to equal the API server");
  },
  60_000,
);

test.each(HTTP_ONLY)(
  "NATS replay: a follower whose reads of the store hang tells a `to` past its head to ask again (%s)",
  async (storeScheme) => {
    const nats = await startNatsServer();
    cleanups.push(() => nats.destroy());
    const env = await partitionable(2, storeScheme, { sinks: ["  - type: nats", `    servers: ["${nats.url}"]`] });
    const { leader, follower } = await env.leaderAndFollower();
    const headOf = async (replica: Replica) =>
      (await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
    const { epoch, version } = await headOf(leader);
    // The follower's log holds `version` (a position it has not read is waited for, then a 410).
    expect((await fetch(`${follower.url}/v1/updates?since=${epoch}:${version}`)).status).toBe(200);

    env.storePaths[1]!.partition();
    for (let i = 0; i < 3; i++)
      env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `gap-${i}` } });
    await waitFor(async () => (await headOf(leader)).version >= version + 3, 10_000, "the leader to commit them");
    const to = version + 3;
    // The leader gone, the follower alone answers replays; its reads have hung for a Lease's duration by then.
    leader.proc.kill("SIGKILL");
    await waitFor(
      async () => JSON.stringify(await (await fetch(`${follower.url}/readyz`)).json()).includes("no answer from the"),
      LEASE_MS + 5_000,
      "the follower to count its read unanswered",
    );
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    // A consumer's gap, `to` its `prev`: a reply that ends at this replica's head would be short of it, asked again and
    // answered short again, until the requester takes the stream's state instead.
    const chunks = await replay(
      nc,
      "kubemeta.faults.replay",
      { stream: "all", from: `${epoch}:${version}`, to },
      5_000,
      1,
    );
    expect(chunks.map((chunk) => [chunk.updates.length, chunk.error, chunk.last])).toEqual([
      [0, "this replica cannot read the store yet; ask again later", true],
    ]);
  },
  60_000,
);
