/**
 * What the HA tests share besides the cluster (./ha-cluster.ts): the checks of tests/faults-cluster.ts on replicas
 * once churn stops.
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Update } from "../sdk/model.ts";
import { expectGapFreeWithWholeChains, waitFor } from "../testing/index.ts";
import { type Consumer, expectFollowedWholly } from "./faults-cluster.ts";
import type { Replica, setupHa } from "./ha-cluster.ts";
import type { TcpProxy } from "./tcp-proxy.ts";

type HaEnv = Awaited<ReturnType<typeof setupHa>>;

/** A replica's /readyz: its status and the reasons it gives. */
export async function readiness(replica: Replica): Promise<{ status: number; waiting: string[] }> {
  const response = await fetch(`${replica.url}/readyz`);
  return { status: response.status, waiting: ((await response.json()) as { waiting: string[] }).waiting };
}

/** Replica `i`'s path to the store cut (every byte dropped both ways) once a read of its hangs on it. */
export async function hungStorePath(env: HaEnv, i: number): Promise<TcpProxy> {
  const path = env.storePaths[i]!;
  path.partition();
  await waitFor(() => path.hung > 0, 5_000, `a read of replica-${i}'s to hang`);
  return path;
}

/**
 * `replica` equals the API server, the store's log is gap-free with whole prev chains (no version lost or written
 * twice), and each consumer applied all of it once, with no RESET.
 */
export async function expectConverged(env: HaEnv, replica: Replica, consumers: Consumer[]): Promise<Update[]> {
  await waitFor(() => env.matchesTruth(replica.url), 30_000, `${replica.identity} to equal the API server`);
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  const state = await env.storeState();
  for (const { rec, sub } of consumers) await expectFollowedWholly(rec, sub, updates, state);
  return updates;
}

/**
 * For three Lease durations with the store away: nobody holds the Lease and none of `replicas` tries to become the
 * writer (each would take the Lease and give it back, every backoff step, each logged); `also` checks more each time.
 */
export async function expectNobodyContends(
  env: HaEnv,
  replicas: Replica[],
  leaseMs: number,
  also: () => unknown = () => {},
): Promise<void> {
  const quietUntil = performance.now() + 3 * leaseMs;
  await waitFor(
    async () => {
      const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity?: string } };
      expect(lease.spec.holderIdentity ?? "").toBe("");
      for (const replica of replicas)
        expect(replica.out.lines("cannot become the store's writer; following again")).toEqual([]);
      await also();
      return performance.now() > quietUntil;
    },
    4 * leaseMs,
    "three Lease durations without the store",
  );
  for (const replica of replicas)
    expect(replica.out.lines("not contending for the Lease until the store can be read")).toHaveLength(1);
}

/**
 * Replica 0 started, leading and ready, then started again (SIGTERM, exit 0): the new process holds no update in
 * memory (its log's tail begins at the head), so a catch-up or replay it serves reads the store. Returns it and the
 * position of the state the first one served.
 */
export async function restartedReplica(env: HaEnv): Promise<{ again: Replica; epoch: string; version: number }> {
  const replica = await env.start(0);
  await env.leading(replica);
  await env.ready(replica);
  const { epoch, version } = (await (await fetch(`${replica.url}/v1/objects?kind=Namespace`)).json()) as {
    epoch: string;
    version: number;
  };
  expect(version).toBeGreaterThan(10);
  replica.proc.kill("SIGTERM");
  expect(await replica.proc.exited).toBe(0);
  return { again: await env.start(0), epoch, version };
}

/** The fields of a log line that README's High availability section does not name (as `field`): left for guessing. */
export function fieldsReadmeLeavesOut(line: Record<string, unknown>): string[] {
  const readme = readFileSync(join(import.meta.dir, "..", "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## High availability"), readme.indexOf("\n## HTTP"));
  return Object.keys(line).filter((key) => !["level", "time", "msg"].includes(key) && !section.includes(`\`${key}\``));
}
