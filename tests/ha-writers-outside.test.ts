/**
 * Writers that the Lease does not keep apart on one store: two replicas given one `ha.identity` (both hold the Lease
 * under that name), or two deployments of another `ha.lease` each. They fence each other out over and over; each
 * replica says so as an error naming what to change, and counts it.
 */
import { afterEach, expect, test } from "bun:test";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { type HaOptions, type Replica, setupHa } from "./ha-cluster.ts";

afterEach(runCleanups);

const TAKEN_AGAIN = "another writer keeps taking the store while this replica holds the Lease";

async function twoWriters(options: Pick<HaOptions, "identity" | "lease">): Promise<Replica[]> {
  const env = await setupHa({ replicas: 2, ...options });
  cleanups.push(env.destroy);
  const first = await env.start(0);
  await env.leading(first);
  const second = await env.start(1);
  const churn = startChurn(env.server, { perSecond: 20, seed: 5 });
  cleanups.push(() => churn.stop());
  const replicas = [first, second];
  await waitFor(
    () => replicas.some((replica) => replica.out.lines(TAKEN_AGAIN).length > 0),
    30_000,
    `"${TAKEN_AGAIN}" on a replica`,
  );
  const [said] = replicas.flatMap((replica) => replica.out.lines(TAKEN_AGAIN));
  expect(said).toMatchObject({ level: "error", term: expect.any(Number), storedTerm: expect.any(Number) });
  expect(said!.hint).toContain("give each replica its own ha.identity");
  const saying = replicas.find((replica) => replica.out.lines(TAKEN_AGAIN).length > 0)!;
  expect(await env.metric(saying.url, "kubemeta_ha_fenced_holding_lease_total")).toBeGreaterThanOrEqual(2);
  return replicas;
}

test("two replicas given one ha.identity: an error naming the cause, and a count of the fences", async () => {
  await twoWriters({ identity: () => "twin" });
}, 60_000);

test("two replicas of another ha.lease each on one store: an error naming the cause, and a count", async () => {
  await twoWriters({ lease: (i) => `kubemeta-${i}` });
}, 60_000);
