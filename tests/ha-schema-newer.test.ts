/**
 * A rolling update to a release that changed the store's schema: a replica of the earlier release that starts after a
 * later one migrated the shared store cannot open it. It exits 1 at once, saying what to do: run the later release
 * (the rollout replaces it), not another store, which would split the deployment.
 */
import { afterEach, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { SCHEMA_VERSION } from "../plugins/stores/libsql/schema.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { setupHa, STORE_TOKEN } from "./ha-cluster.ts";
import { exitWithin } from "./reliability-process.ts";

afterEach(runCleanups);

test("an earlier replica restarted on a store a later one migrated exits 1 with a hint to upgrade it", async () => {
  const env = await setupHa({ replicas: 1 });
  cleanups.push(env.destroy);
  const earlier = await env.start(0);
  await env.leading(earlier);
  earlier.proc.kill("SIGTERM");
  expect(await exitWithin(earlier.proc, 10_000)).toBe(0);
  // What a later release's start leaves: a migration this release does not know.
  const sql = createClient({ url: env.store.url, authToken: STORE_TOKEN });
  cleanups.push(() => sql.close());
  const newer = SCHEMA_VERSION + 1;
  await sql.execute({
    sql: "INSERT INTO schema_version (version, applied_at) VALUES (?, '2027-01-01T00:00:00.000Z')",
    args: [newer],
  });

  const restarted = await env.start(0, false);
  expect(await exitWithin(restarted.proc, 20_000)).toBe(1);
  await restarted.out.all();
  const [refused, ...more] = restarted.out.lines("store cannot be opened");
  expect(more).toEqual([]);
  expect(refused).toMatchObject({
    level: "error",
    error: { message: expect.stringContaining(`schema version ${newer}, newer than this kubemeta supports`) },
    hint: expect.stringContaining("a replica of a later kubemeta migrated this shared store"),
  });
  expect(restarted.out.lines("trying to acquire the Lease")).toEqual([]);
}, 60_000);
