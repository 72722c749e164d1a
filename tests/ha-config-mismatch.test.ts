/**
 * Replicas of one Lease whose configs differ in what they must share are said to: the leader writes its
 * `cluster.name` and its store's epoch on the Lease (annotations), and a standby that reads another value logs one
 * error line naming the key, both values and what goes wrong, and sets `kubemeta_ha_config_mismatch{key}`; it still
 * serves and is ready. Two real replicas on the simulated API server's Lease, each on a real libSQL server.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type Lease, microTime } from "../kube/lease.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { metric } from "./cluster-checks.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { type Replica, STORE_TOKEN, setupHa } from "./ha-cluster.ts";
import { startHranaServer } from "./hrana-server.ts";

afterEach(runCleanups);

const MISMATCH = "kubemeta_ha_config_mismatch";
const CLUSTER_DIFFERS = "cluster.name differs between this replica and the leader";
const STORE_DIFFERS = "store.url differs between this replica and the leader";

/** The cluster name the Lease's holder wrote on it. */
function leaseCluster(env: { server: { get(kind: string, namespace: string, name: string): unknown } }) {
  const lease = env.server.get("Lease", "default", "kubemeta") as Lease | undefined;
  return lease?.metadata.annotations?.["kubemeta.io/cluster"];
}

const mismatch = (replica: Replica, key: string) => metric(replica.url, MISMATCH, { key });

/** Waits until the standby has read the Lease `reads` more times than now (each retryPeriod, 0.5 s). */
async function moreReads(replica: Replica, reads: number): Promise<void> {
  const gets = async () => (await metric(replica.url, "kubemeta_ha_lease_requests_total", { verb: "get" })) ?? 0;
  const from = await gets();
  await waitFor(async () => (await gets()) >= from + reads, 10_000, `${reads} more reads of the Lease`);
}

test("a standby of another cluster.name says so once, both names, still ready; leading, it agrees", async () => {
  const env = await setupHa({ replicas: 2, resources: ["pods"], cluster: (i) => (i === 0 ? "faults" : "renamed") });
  cleanups.push(env.destroy);
  const { leader, follower } = await env.leaderAndFollower();
  expect(leaseCluster(env)).toBe("faults");

  // Was: nothing said, the NATS prefix changing at the next handover unseen.
  await follower.out.waitFor(new RegExp(`"msg":"${CLUSTER_DIFFERS}"`), 10_000);
  expect(await mismatch(follower, "cluster.name")).toBe(1);
  expect(await mismatch(follower, "store.url")).toBe(0);
  expect(await mismatch(leader, "cluster.name")).toBe(0);
  await moreReads(follower, 3);
  const said = follower.out.lines(CLUSTER_DIFFERS);
  expect(said).toHaveLength(1);
  expect(said[0]).toMatchObject({ level: "error", key: "cluster.name", leader: "replica-0" });
  expect(said[0]).toMatchObject({ leaderValue: "faults", value: "renamed" });
  expect(String(said[0]?.consequence)).toContain("NATS subjects");
  // Said, not refused: a rolling update that renames the cluster completes.
  expect((await fetch(`${follower.url}/readyz`)).status).toBe(200);

  // The leader stops (a rolling update): the renamed replica leads, its own name on the Lease, and agrees with it.
  leader.proc.kill("SIGTERM");
  await env.leading(follower, 10_000);
  await waitFor(async () => (await mismatch(follower, "cluster.name")) === 0, 10_000, "the gauge back at 0");
  expect(leaseCluster(env)).toBe("renamed");
}, 30_000);

test("a standby on another store than its leader's says so, with both stores' epochs", async () => {
  const dir = await tempDir("kubemeta-other-store-");
  const other = startHranaServer({ path: join(dir, "kubemeta.db"), token: STORE_TOKEN });
  cleanups.push(async () => {
    await other.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const env = await setupHa({ replicas: 2, resources: ["pods"], storeUrl: (i) => (i === 1 ? other.url : undefined) });
  cleanups.push(env.destroy);
  const leader = await env.start(0);
  await env.leading(leader);
  const standby = await env.start(1);

  // Was: the standby followed a store nobody wrote, its readers getting nothing new, and nothing said why.
  await standby.out.waitFor(new RegExp(`"msg":"${STORE_DIFFERS}"`), 10_000);
  const [leaderOpen] = leader.out.lines("store open");
  const [standbyOpen] = standby.out.lines("store open");
  const [said] = standby.out.lines(STORE_DIFFERS);
  expect(said).toMatchObject({ key: "store.url", leaderValue: leaderOpen?.epoch, value: standbyOpen?.epoch });
  expect(leaderOpen?.epoch).not.toBe(standbyOpen?.epoch);
  expect(await mismatch(standby, "store.url")).toBe(1);
  expect(await mismatch(standby, "cluster.name")).toBe(0);
}, 30_000);

test("a standby compares no values its leader did not write (left by a predecessor), only its own", async () => {
  const env = await setupHa({ replicas: 1, resources: ["pods"] });
  cleanups.push(env.destroy);
  // A leader of a release before the check: it holds the Lease (for long) under the annotations it found on it.
  const now = microTime();
  const spec = { holderIdentity: "old-release", leaseDurationSeconds: 3600, acquireTime: now, renewTime: now };
  const annotations = { "kubemeta.io/cluster": "renamed", "kubemeta.io/annotated-by": "replica-9" };
  const metadata = { name: "kubemeta", namespace: "default", annotations };
  env.server.create({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata, spec } as never);
  const standby = await env.start(0);
  await standby.out.waitFor(/"msg":"the Lease is held by another replica"/, 10_000);
  await moreReads(standby, 2);
  expect(standby.out.lines(CLUSTER_DIFFERS)).toEqual([]);
  expect(await mismatch(standby, "cluster.name")).toBe(0);

  // Written by the holder itself with the spec it holds, the same values are its config: compared.
  env.server.patch("Lease", "default", "kubemeta", (lease) => {
    const written = { "kubemeta.io/annotated-by": "old-release", "kubemeta.io/annotated-at": now };
    lease.metadata = { ...lease.metadata, annotations: { ...annotations, ...written } };
  });
  await standby.out.waitFor(new RegExp(`"msg":"${CLUSTER_DIFFERS}"`), 10_000);
  expect(await mismatch(standby, "cluster.name")).toBe(1);
}, 30_000);

test("a leader of an earlier release under the name that annotated the Lease: not compared", async () => {
  const env = await setupHa({ replicas: 2, resources: ["pods"], cluster: (i) => (i === 0 ? "faults" : "renamed") });
  cleanups.push(env.destroy);
  const later = await env.start(0);
  await env.leading(later);
  expect(leaseCluster(env)).toBe("faults");
  // A rollback in a StatefulSet: replica-0 dies and comes back of an earlier release (cluster renamed with it), which
  // renews the Lease as its own (same name) and keeps the annotations of the later replica-0 it read.
  later.proc.kill("SIGKILL");
  await later.proc.exited;
  env.server.patch("Lease", "default", "kubemeta", (lease) => {
    const { spec } = lease as unknown as Lease;
    (lease as unknown as Lease).spec = { ...spec, renewTime: microTime(), leaseDurationSeconds: 3600 };
  });
  const standby = await env.start(1);
  await standby.out.waitFor(/"msg":"the Lease is held by another replica"/, 10_000);
  await moreReads(standby, 2);
  // Was: `cluster.name differs`, leaderValue "faults": a value no replica running has.
  expect(standby.out.lines(CLUSTER_DIFFERS)).toEqual([]);
  expect(await mismatch(standby, "cluster.name")).toBe(0);
}, 30_000);

test("the leader gone (SIGTERM), each standby's gauge is its value against the next holder's", async () => {
  const names = ["faults", "renamed", "faults"];
  const env = await setupHa({ replicas: 3, resources: ["pods"], cluster: (i) => names[i]! });
  cleanups.push(env.destroy);
  const leader = await env.start(0);
  await env.leading(leader);
  const standbys = [await env.start(1), await env.start(2)];
  await waitFor(async () => (await mismatch(standbys[0]!, "cluster.name")) === 1, 10_000, "replica-1's gauge at 1");

  leader.proc.kill("SIGTERM");
  await leader.proc.exited;
  const holder = () => (env.server.get("Lease", "default", "kubemeta") as Lease | undefined)?.spec.holderIdentity;
  await waitFor(() => standbys.some((s) => s.identity === holder()), 10_000, "a standby holding the Lease");
  const next = names[Number(holder()?.slice("replica-".length))];
  // Whichever took it, each replica compares its value with that holder's (both outcomes are the same check).
  for (const [i, standby] of standbys.entries()) {
    const expected = names[i + 1] === next ? 0 : 1;
    await waitFor(async () => (await mismatch(standby, "cluster.name")) === expected, 10_000, `gauge ${expected}`);
  }
  // And stays so: the replica still a standby reads the Lease on.
  await moreReads(standbys.find((standby) => standby.identity !== holder())!, 2);
  for (const [i, standby] of standbys.entries())
    expect(await mismatch(standby, "cluster.name")).toBe(names[i + 1] === next ? 0 : 1);
}, 30_000);
