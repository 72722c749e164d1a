/**
 * A replica that wins the Lease over a path to the store that drops packets: its term's start (the store's lead(),
 * which takes the writer's term, then the catch-up) hangs until `store.timeout`, 60 s by default. It gives that start
 * up once a request has waited `ha.renewDeadline` and gives the Lease back, so a standby that reaches the store leads;
 * stopped meanwhile, it exits at once, 0, not cut by `shutdownTimeout`; one that loses the Lease meanwhile gives the
 * start up at once, and follows.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { microTime, type Lease } from "../kube/lease.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { setupHa, TAKEOVER_MS, type Replica } from "./ha-cluster.ts";
import { hungStorePath, readiness } from "./ha-checks.ts";
import { exitWithin, plugin } from "./reliability-process.ts";

afterEach(runCleanups);

/** ha.renewDeadline in tests/ha-cluster.ts. */
const RENEW_DEADLINE_MS = 2_000;

/**
 * Replica 0 leads and replica 1 follows; replica 1's path to the store is cut (every byte dropped both ways), then
 * replica 0 stops and gives the Lease back: replica 1, its read not yet counted unanswered (a Lease's duration), takes
 * it and begins its term, which hangs.
 */
async function cutOffWinner(env: Awaited<ReturnType<typeof setupHa>>): Promise<Replica> {
  const { leader, follower: cutOff } = await env.leaderAndFollower();
  await hungStorePath(env, 1);
  leader.proc.kill("SIGTERM");
  expect(await exitWithin(leader.proc, 10_000)).toBe(0);
  await cutOff.out.waitFor(/"msg":"acquired the Lease; leading"/, 5_000);
  return cutOff;
}

/**
 * Another holder of the Lease, for an hour (the API server's view of `winner` lost: its renewal finds it); resolves
 * once `winner` has said it lost the Lease.
 */
async function loseTheLease(env: Awaited<ReturnType<typeof setupHa>>, winner: Replica): Promise<void> {
  env.server.patch("Lease", "default", "kubemeta", (lease) => {
    const { spec } = lease as unknown as Lease;
    (lease as unknown as Lease).spec = { ...spec, holderIdentity: "intruder", renewTime: microTime() };
    (lease as unknown as Lease).spec.leaseDurationSeconds = 3600;
  });
  await winner.out.waitFor(/"msg":"lost the Lease; no longer leading"/, RENEW_DEADLINE_MS);
}

test("a replica whose term's start hangs gives the Lease up after renewDeadline: a standby leads", async () => {
  const env = await setupHa({ replicas: 3, storePaths: true });
  cleanups.push(env.destroy);
  const cutOff = await cutOffWinner(env);
  const wonAt = performance.now();
  const standby = await env.start(2);
  await env.leading(standby, RENEW_DEADLINE_MS + TAKEOVER_MS);
  console.log(`the standby led ${(performance.now() - wonAt).toFixed(0)} ms after the cut-off replica won the Lease`);
  const [gaveUp] = cutOff.out.lines("cannot become the store's writer; following again");
  expect(gaveUp?.error).toMatchObject({
    message: `no answer from the store in ${RENEW_DEADLINE_MS} ms (ha.renewDeadline); giving the Lease up`,
  });
  expect(cutOff.out.lines("released the Lease")).toHaveLength(1);
  expect(cutOff.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
  // Unable to read the store, the cut-off replica is unready and does not contend; the standby commits.
  expect((await readiness(cutOff)).waiting).toEqual([expect.stringMatching(/^store not readable: no answer/)]);
  env.server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "after-the-handover" } });
  await waitFor(() => env.matchesTruth(standby.url), 10_000, "the standby to equal the API server");

  // Healed, it follows what the standby committed.
  env.storePaths[1]!.heal();
  await env.ready(cutOff, 10_000);
  await waitFor(() => env.matchesTruth(cutOff.url), 10_000, "the cut-off replica to equal the API server");
  expect(cutOff.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
}, 60_000);

test("SIGTERM of a replica whose term's start hangs: it exits 0 at once and gives the Lease back", async () => {
  const env = await setupHa({ replicas: 2, storePaths: true });
  cleanups.push(env.destroy);
  const cutOff = await cutOffWinner(env);
  const stoppedAt = performance.now();
  cutOff.proc.kill("SIGTERM");
  // Nothing to drain (no source started, nothing to commit): over at once, not once the store's lead() fails.
  expect(await exitWithin(cutOff.proc, 3_000)).toBe(0);
  console.log(`the replica exited ${(performance.now() - stoppedAt).toFixed(0)} ms after SIGTERM`);
  expect(cutOff.out.lines("stopped")).toHaveLength(1);
  const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity?: string } };
  expect(lease.spec.holderIdentity ?? "").toBe("");
}, 60_000);

test("a replica that loses the Lease while its term starts gives the start up: no sources, no 'leading'", async () => {
  const env = await setupHa({ replicas: 2, storePaths: true });
  cleanups.push(env.destroy);
  const { leader, follower: winner } = await env.leaderAndFollower();
  // The store's answers to the winner held: its term's start waits on the store's lead().
  const path = env.storePaths[1]!;
  path.hold();
  leader.proc.kill("SIGTERM");
  expect(await exitWithin(leader.proc, 10_000)).toBe(0);
  await winner.out.waitFor(/"msg":"acquired the Lease; leading"/, 5_000);
  await loseTheLease(env, winner);
  path.release();
  await env.ready(winner, 10_000);
  // Was: the term began all the same ("leading", its sources listing the cluster), to end at once.
  expect(winner.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
  expect(winner.out.lines("source synced")).toEqual([]);
  const [gaveUp] = winner.out.lines("lost the Lease while becoming the store's writer; following again");
  expect(gaveUp).toMatchObject({ level: "warn" });
  expect(winner.out.lines("cannot become the store's writer; following again")).toEqual([]);
}, 60_000);

/** A lone replica (its env cleaned up after the test) whose term's start hangs on a source's, once it is under way. */
async function hangingSourceStarted(): Promise<{ env: Awaited<ReturnType<typeof setupHa>>; winner: Replica }> {
  const env = await setupHa({ replicas: 1, sources: ["  - { type: ./hanging-source.ts }"] });
  cleanups.push(env.destroy);
  // Its start hangs (up to the plugin deadline, 10 s): the term's start waits on it, the store's lead() answered.
  await Bun.write(
    join(env.dir, "hanging-source.ts"),
    plugin("Source", 'ctx.logger.info("hanging source starting"); await new Promise(() => {});'),
  );
  const winner = await env.start(0);
  await winner.out.waitFor(/"msg":"hanging source starting"/, 10_000);
  return { env, winner };
}

test("a replica that loses the Lease while its term's sources start: the term given up, no 'leading'", async () => {
  const { env, winner } = await hangingSourceStarted();
  await loseTheLease(env, winner);
  await winner.out.waitFor(/"msg":"lost the Lease while becoming the store's writer; following again"/, 5_000);
  // Was: the cut start returned the term, which began ('leading', a term counted) only to end at once.
  expect(winner.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
  expect(winner.out.lines("no longer leading; following the store")).toEqual([]);
  expect(await env.metric(winner.url, "kubemeta_ha_terms_total")).toBe(0);
  expect(await env.metric(winner.url, "kubemeta_ha_leader")).toBe(0);
  // The term's sources stopped, the hanging one's start under way included; the replica follows the new store.
  expect(winner.out.lines("Source stopped")).toHaveLength(1);
  expect((await readiness(winner)).waiting).toEqual(["the store's first sync is under way on the leader"]);
}, 60_000);

test("SIGTERM of a replica while its term's sources start: exit 0 at once, no 'leading'", async () => {
  const { env, winner } = await hangingSourceStarted();
  winner.proc.kill("SIGTERM");
  expect(await exitWithin(winner.proc, 3_000)).toBe(0);
  await winner.out.all();
  // Was: `leading: …` after `shutting down`, a term begun (its sinks let deliver) by a replica on its way out.
  expect(winner.out.lines("leading: this replica writes the store and runs the sources")).toEqual([]);
  expect(winner.out.lines("Source stopped")).toHaveLength(1);
  expect(winner.out.lines("stopped")).toHaveLength(1);
  const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity?: string } };
  expect(lease.spec.holderIdentity ?? "").toBe("");
}, 60_000);
