/**
 * A lone `ha` replica that wins the Lease again and again but cannot become the store's writer (its new term
 * refused) says so once, not at every try, and its term's first line, once it leads, says how long that took.
 */
import { afterEach, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { setupHa, STORE_TOKEN } from "./ha-cluster.ts";

afterEach(runCleanups);

const REFUSED = "cannot become the store's writer; following again";

test("keeps winning the Lease but cannot become the writer: one error; 'leading' says how long it took", async () => {
  const env = await setupHa({ replicas: 1, settings: ["log: { level: debug }"] });
  cleanups.push(env.destroy);
  const replica = await env.start(0);
  await env.leading(replica);
  const sql = createClient({ url: env.store.url, authToken: STORE_TOKEN });
  cleanups.push(() => sql.close());
  // Another writer raises the store's term, then no new term can be had: as a store that takes reads only.
  await env.withStore((store) => store.lead());
  await sql.execute(
    "CREATE TRIGGER no_new_term BEFORE UPDATE OF term ON meta BEGIN SELECT RAISE(ABORT, 'no new term'); END",
  );
  const churn = startChurn(env.server, { perSecond: 20, seed: 3 });
  cleanups.push(() => churn.stop());
  // Fenced with the Lease held: it asks for the writer's term again at once, refused.
  await replica.out.waitFor(/"msg":"fenced while holding the Lease; taking the store's writer's term again"/, 10_000);
  churn.stop();
  // The Lease given back and won again after a writer's backoff, then at each of its steps.
  await waitFor(() => replica.out.lines(REFUSED).length >= 3, 20_000, "three tries to become the writer");
  expect(replica.out.lines(REFUSED).map(({ level }) => level)).toEqual([
    "error",
    ...Array(replica.out.lines(REFUSED).length - 1).fill("debug"),
  ]);
  expect(replica.out.lines(REFUSED)[0]!.error).toMatchObject({ message: expect.stringContaining("no new term") });

  await sql.execute("DROP TRIGGER no_new_term");
  await waitFor(
    () => replica.out.lines("leading: this replica writes the store and runs the sources").length === 2,
    20_000,
    "leading again",
  );
  const [, again] = replica.out.lines("leading: this replica writes the store and runs the sources");
  expect(again!.failedAttempts).toBeGreaterThanOrEqual(3);
  expect(again).toMatchObject({ level: "info", downMs: expect.any(Number) });
}, 60_000);
