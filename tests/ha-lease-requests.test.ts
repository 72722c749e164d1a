/**
 * The election's requests for the Lease are counted, by verb and code, in `kubemeta_ha_lease_requests_total`: a Lease
 * API that refuses them (RBAC's 403, a 429, a 5xx) is seen on /metrics, not only in the log. Two real replicas on the
 * test API server, which refuses some of their reads and writes of the Lease.
 */
import { afterEach, expect, test } from "bun:test";
import { waitFor } from "../testing/index.ts";
import { metric } from "./cluster-checks.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { type Replica, setupHa } from "./ha-cluster.ts";

afterEach(runCleanups);

const LEASE_REQUESTS = "kubemeta_ha_lease_requests_total";

/** The series `{verb, code}` summed over the replicas (0 where a replica has none). */
async function counted(replicas: Replica[], verb: string, code: string): Promise<number> {
  const each = await Promise.all(replicas.map((replica) => metric(replica.url, LEASE_REQUESTS, { verb, code })));
  return each.reduce<number>((sum, value) => sum + (value ?? 0), 0);
}

test("the Lease's requests refused (403, 429, 500, 503) are counted by verb and code on the replicas", async () => {
  const env = await setupHa({ replicas: 2, resources: ["pods"] });
  cleanups.push(env.destroy);
  const leader = await env.start(0);
  await env.leading(leader);
  const standby = await env.start(1);
  await standby.out.waitFor(/"msg":"the Lease is held by another replica"/, 20_000);
  const replicas = [leader, standby];
  // The Lease created: the first read found none.
  expect(await counted(replicas, "get", "404")).toBe(1);
  expect(await counted(replicas, "create", "201")).toBe(1);

  env.server.failNext({ verb: "get", resource: "leases", status: 403, count: 2 });
  env.server.failNext({ verb: "update", resource: "leases", status: 429, count: 1 });
  env.server.failNext({ verb: "update", resource: "leases", status: 503, count: 1 });
  env.server.failNext({ verb: "get", resource: "leases", status: 500, count: 1 });
  const refused = async () =>
    Promise.all([
      counted(replicas, "get", "403"),
      counted(replicas, "update", "429"),
      counted(replicas, "update", "503"),
      counted(replicas, "get", "500"),
    ]);
  // Was: no such series, the refusals only in the log ("cannot renew the Lease", "cannot acquire the Lease").
  await waitFor(async () => (await refused()).join() === "2,1,1,1", 20_000, "each refusal counted").catch(() => {});
  expect(await refused()).toEqual([2, 1, 1, 1]);
  // Each renewal that went through is counted too, and reads of the Lease answered.
  await waitFor(async () => (await counted([leader], "update", "200")) > 0, 10_000, "a renewal counted 200");
  expect(await counted(replicas, "get", "200")).toBeGreaterThan(0);
});
