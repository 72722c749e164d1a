/**
 * High availability as an operator sees it from README.md alone: real replicas (main.ts) on one remote store, each
 * reaching the API server through a path of its own that a test can cut (packets dropped, as a network partition).
 */
import { afterEach, expect, test } from "bun:test";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { LEASE_MS, setupHa } from "./ha-cluster.ts";

afterEach(runCleanups);

/** ha-cluster.ts's `ha.renewDeadline`. */
const RENEW_DEADLINE_MS = 2_000;

test("SIGTERM of the leader cut off from the API server: its release says how long it waited, exit 0", async () => {
  const env = await setupHa({ replicas: 2, resources: ["pods"], apiPaths: true });
  cleanups.push(env.destroy);
  const { leader, follower } = await env.leaderAndFollower();
  env.apiPaths[0]!.partition();
  const stoppedAt = performance.now();
  leader.proc.kill("SIGTERM");
  expect(await leader.proc.exited).toBe(0);
  // The release is bounded by renewDeadline, as each request for the Lease is.
  expect(performance.now() - stoppedAt).toBeLessThan(RENEW_DEADLINE_MS + 3_000);
  await leader.out.all();
  const [release] = leader.out.lines("cannot release the Lease; a standby takes it over once it expires");
  // Was "The operation timed out.": the one Lease request whose error said neither that nothing answered nor for how
  // long, where a renewal's or an acquire's says `no answer in 2000 ms`.
  expect(release?.error).toMatchObject({ name: "TimeoutError", message: `no answer in ${RENEW_DEADLINE_MS} ms` });
  // The Lease not given back, the standby takes it once it has expired by its own clock.
  await env.leading(follower, LEASE_MS + 5_000);
});
