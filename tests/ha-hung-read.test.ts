/**
 * A follower whose read of the store hangs (a path that drops packets: it fails only after `store.timeout`, 60 s by
 * default) is not waited for by its stop: a SIGTERM ends the replica within the Lifecycle's bounds, and a term it wins
 * begins without waiting for that read, whose late answer is ignored. Nor does it wait for the read to follow the
 * store again: unanswered for a Lease's duration, the read is given up and made again, over a new connection.
 */
import { afterEach, expect, test } from "bun:test";
import { createLog } from "../core/committed-log.ts";
import { followStore } from "../host/follower.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import type { Update } from "../sdk/model.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { LEASE_MS, setupHa, TAKEOVER_MS } from "./ha-cluster.ts";
import { hungStorePath, readiness } from "./ha-checks.ts";
import { exitWithin } from "./reliability-process.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";

afterEach(runCleanups);

/** Two replicas on the test libSQL server, each through a proxy of its own (`env.storePaths`); gone after the test. */
async function twoReplicas(storeScheme: "http" | "ws" = "http") {
  const env = await setupHa({ replicas: 2, storePaths: true, storeScheme });
  cleanups.push(env.destroy);
  return { env, ...(await env.leaderAndFollower()) };
}

/**
 * A store in a file, led (its writer's term taken), and a log of it at version 0 that gives a read up after
 * `unansweredMs`; the store stopped after the test.
 */
async function ledStore(unansweredMs = Infinity) {
  const { newDir, makeStore } = storeSandbox("file");
  const store = makeStore(newDir());
  cleanups.push(() => store.stop());
  await store.start();
  const { epoch } = await store.lead();
  const log = createLog({
    store,
    epoch,
    head: 0,
    oldest: 1,
    whole: true,
    logger: silentLogger,
    metrics: createMetrics(),
    unansweredMs,
  });
  return { store, log };
}

test("SIGTERM of a follower whose read of the store hangs: it exits at once, not after the read", async () => {
  const { env, leader, follower } = await twoReplicas();

  env.storePaths[1]!.partition();
  await waitFor(
    async () => (await readiness(follower)).waiting.some((reason) => reason.includes("no answer from the store")),
    10_000,
    "the follower's read to hang",
  );
  const stoppedAt = performance.now();
  follower.proc.kill("SIGTERM");
  // A follower has nothing to drain: a stop that does not wait for the read is over at once. (One that waits does
  // until the read fails: store.timeout, or here, sooner, the test server closing the connection it sees idle.)
  expect(await exitWithin(follower.proc, 3_000)).toBe(0);
  console.log(`the follower exited ${(performance.now() - stoppedAt).toFixed(0)} ms after SIGTERM`);
  expect(follower.out.lines("stopped")).toHaveLength(1);
  // The leader, which reaches the store, still leads.
  expect((await fetch(`${leader.url}/readyz`)).status).toBe(200);
}, 60_000);

test.each(["http", "ws"] as const)(
  "a follower whose read of the store hangs wins the Lease: its term begins, not waiting for the read (%s)",
  async (scheme) => {
    const { env, leader, follower } = await twoReplicas(scheme);

    // The follower's connection to the store hangs with its read on it (60 s, store.timeout); new ones go through.
    const path = await hungStorePath(env, 1);
    path.reopen();
    // The leader gives the Lease back as it stops: the follower takes it at its next try, its read not yet counted
    // unanswered (a Lease's duration), and begins its term over a new connection.
    const releasedAt = performance.now();
    leader.proc.kill("SIGTERM");
    expect(await exitWithin(leader.proc, 10_000)).toBe(0);
    await env.leading(follower, 5_000);
    console.log(`the follower led ${(performance.now() - releasedAt).toFixed(0)} ms after the leader's SIGTERM`);
    await env.ready(follower, 10_000);

    // The hung read fails now, late: nothing of it reaches the term's log, nor its logs.
    path.heal();
    env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "after-the-takeover" } });
    await waitFor(() => env.matchesTruth(follower.url), 10_000, "the new leader to equal the API server");
    expect(follower.out.lines("cannot read the store to follow it; retrying")).toEqual([]);
    expect(follower.out.lines("no longer leading; following the store")).toEqual([]);
  },
  60_000,
);

// Over WebSocket, where one connection could carry every request, the next read takes another all the same: the
// store's client sends a request over a connection that nothing waits on (plugins/stores/libsql/ws-client.ts).
test.each(["http", "ws"] as const)(
  "a follower's read that hangs while new connections pass is given up: it follows and contends again (%s)",
  async (scheme) => {
    const { env, leader, follower } = await twoReplicas(scheme);

    // A load balancer's failover: the follower's connection to the store hangs with its read on it (until
    // store.timeout, 60 s, or here the test server closing the connection it sees idle, 10 s); new ones go through.
    const path = await hungStorePath(env, 1);
    const hungAt = performance.now();
    path.reopen();
    // Given up once unanswered for a Lease's duration, the read is made again over a new connection.
    const again = await waitFor(
      () => follower.out.lines("following the store again")[0],
      LEASE_MS + 2_000,
      "the follower to read the store again",
    );
    console.log(`the follower followed again ${(performance.now() - hungAt).toFixed(0)} ms after its read hung`);
    expect(again.head).toBeNumber();
    const [gaveUp] = follower.out.lines("cannot read the store to follow it; retrying");
    expect(gaveUp?.error).toMatchObject({
      message: `no answer from the store in ${LEASE_MS} ms (ha.leaseDuration); reading it again`,
    });
    await env.ready(follower, 1_000);
    // The hung connection still hangs. Over WebSocket another may too: one kept free when the path was cut, which a
    // request made during the partition took.
    if (scheme === "http") expect(path.hung).toBe(1);
    else expect(path.hung).toBeGreaterThanOrEqual(1);

    // Ready, it contends: the leader dies, and it leads as a standby does, its old read still hanging.
    leader.proc.kill("SIGKILL");
    await env.leading(follower, TAKEOVER_MS);
    await env.ready(follower, 10_000);
    env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "after-the-failover" } });
    await waitFor(() => env.matchesTruth(follower.url), 10_000, "the new leader to equal the API server");
  },
  60_000,
);

test("stopped while its read of the store goes unanswered, a follower takes nothing from the late answer", async () => {
  const { store, log } = await ledStore();
  await store.commit(batch(run(1, 5, (version) => ({ uid: `uid-${version}`, stream: "shared" }))));
  // Its catch-up's read is answered only once the test lets it, as a read over a path that drops packets hangs.
  const asked = Promise.withResolvers<void>();
  const answer = Promise.withResolvers<void>();
  const late = Promise.withResolvers<Update[]>();
  const readUpdates = store.readUpdates.bind(store);
  store.readUpdates = async (query) => {
    asked.resolve();
    await answer.promise;
    const updates = await readUpdates(query);
    late.resolve(updates);
    return updates;
  };
  const follower = followStore({ store, log, logger: silentLogger, intervalMs: 10, onReplaced: () => {} });
  await asked.promise;

  expect(await until(follower.stop(), Date.now() + 1_000)).not.toBe(TIMED_OUT);
  answer.resolve();
  expect((await late.promise).map((update) => update.version)).toEqual([1, 2, 3, 4, 5]);
  // A turn of the event loop: every continuation of that answer has run by then.
  await new Promise((resolve) => setImmediate(resolve));
  expect(log.head()).toBe(0);
});

test("following again after a term whose start the store never answered: the log behind the store", async () => {
  const { store, log } = await ledStore();
  // The store does not answer, as over the path that hung the term's start.
  const answer = Promise.withResolvers<void>();
  const position = store.position.bind(store);
  store.position = async () => {
    await answer.promise;
    return position();
  };
  const failing = new Error("no answer from the store in 3000 ms (ha.renewDeadline); giving the Lease up");
  const follower = followStore({ store, log, logger: silentLogger, intervalMs: 10, onReplaced: () => {}, failing });
  cleanups.push(() => follower.stop());
  // Not only once the stale timer (2 s) says so: a replay `to` past its head meanwhile got a short reply, asked again
  // and answered short again, a step toward the requester's reset (the suite's failure under load).
  expect(log.behindStore?.()).toBe(true);
  expect(follower.failure()).toBe(failing);
  answer.resolve();
  await waitFor(() => log.behindStore?.() === false, 5_000, "the follower to read the store");
});

test("the log's whole snapshot of a store that answers no read is given up, as each of its pages is", async () => {
  const { store, log } = await ledStore(500);
  await store.commit(batch(run(1, 5, (version) => ({ uid: `uid-${version}`, stream: "shared" }))));
  // Every read of the objects hangs until the test ends, as over a path that drops packets.
  const answer = Promise.withResolvers<void>();
  cleanups.push(async () => answer.resolve());
  const [snapshot, snapshotPages] = [store.snapshot.bind(store), store.snapshotPages.bind(store)];
  store.snapshot = async (query) => {
    await answer.promise;
    return snapshot(query);
  };
  store.snapshotPages = async function* (query, pageSize) {
    await answer.promise;
    yield* snapshotPages(query, pageSize);
  };

  const given = log.snapshot({}).then(
    () => "answered",
    (error: Error) => error.message,
  );
  expect(await until(given, Date.now() + 3_000)).toBe("no answer from the store in 500 ms");
});
