/**
 * README's source plugin ("Write a source plugin"), run as written from a folder of its own: what the host does with
 * what it hands over (versions, a MODIFIED for an object held, no update for one unchanged, a DELETED for one the file
 * no longer holds, after a restart too), a second entry of its kind refused by claimKind, and the objects of a source
 * taken out of the config deleted; an object of another kind than its relist's, which no relist nor retraction
 * would delete, skipped.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { checkPluginContract, startTestHost, type TestHost, tempDir, waitFor } from "../testing/index.ts";
import { installCheckout, readmeBlock } from "./readme-setup.ts";

const SOURCE = "Write a source plugin, block 1 (ts)";
const team = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: "example.com/v1",
  kind: "Team",
  metadata: { name, namespace: "org", uid: `uid-${name}`, resourceVersion: "1", labels },
});

let dir: string;
let th: TestHost | undefined;
afterEach(async () => {
  await th?.stop();
  th = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** The `shared` stream (where a kind without a node goes) as `type name`, from its first update. */
async function updates(host: TestHost): Promise<string[]> {
  const page = (await fetch(`${host.url}/v1/updates?stream=shared&limit=100`).then((r) => r.json())) as {
    items: Record<string, string>[];
  };
  return page.items.map((u) => `${u.type} ${u.name}`);
}

test("README's source publishes a file's objects, their changes and deletions, once each", async () => {
  dir = await tempDir("kubemeta-readme-source-");
  await installCheckout(dir);
  await Bun.write(join(dir, "static-objects.ts"), readmeBlock(SOURCE));
  const file = join(dir, "teams.json");
  await Bun.write(file, JSON.stringify([team("a"), team("b")]));
  const entry = { type: "./static-objects.ts", file, kind: "Team", interval: "50ms" };
  const start = (sources: Record<string, unknown>[]) => startTestHost({ dir, extra: { sources } });

  th = await start([entry]);
  await waitFor(() => th!.host.log.head() >= 2, 5_000);
  await Bun.write(file, JSON.stringify([team("a", { tier: "gold" })]));
  await waitFor(() => th!.host.log.head() >= 4, 5_000);
  // The read that finds d finds a unchanged: no update of a.
  await Bun.write(file, JSON.stringify([team("a", { tier: "gold" }), team("d")]));
  await waitFor(() => th!.host.log.head() >= 5, 5_000);
  expect(await updates(th)).toEqual(["ADDED a", "ADDED b", "MODIFIED a", "DELETED b", "ADDED d"]);
  await th.stop();

  // Restarted, a second entry of the same kind beside: refused by claimKind, nothing of its file published; the
  // first's file read again unchanged: no update.
  const other = join(dir, "other.json");
  await Bun.write(other, JSON.stringify([team("c")]));
  th = await start([entry, { ...entry, name: "other", file: other }]);
  const refused = 'kubemeta_plugin_failures_total{kind="source",phase="start",plugin="other"} ';
  await waitFor(() => th!.host.metrics.render().includes(refused), 5_000, "the second entry refused");
  expect((await updates(th)).length).toBe(5);
  await th.stop();

  // Taken out of the config: once the sources synced, its objects are deleted.
  th = await start([]);
  await waitFor(() => th!.host.log.head() >= 7, 5_000);
  expect((await updates(th)).slice(5).sort()).toEqual(["DELETED a", "DELETED d"]);

  const plugin = (await import(join(dir, "static-objects.ts"))).default;
  expect(await checkPluginContract(plugin, { host: th, config: { file, kind: "Team" } })).toEqual([]);
});

/** The current state as `kind name`; none before the store's first sync (a 503). */
async function objects(host: TestHost): Promise<string[] | undefined> {
  const response = await fetch(`${host.url}/v1/objects`);
  if (!response.ok) return undefined;
  const page = (await response.json()) as { items: Record<string, string>[] };
  return page.items.map((o) => `${o.kind} ${o.name}`).sort();
}

test("an object of another kind than its relist's is skipped, counted and said, never left behind", async () => {
  dir = await tempDir("kubemeta-readme-source-");
  await installCheckout(dir);
  await Bun.write(join(dir, "static-objects.ts"), readmeBlock(SOURCE));
  const file = join(dir, "teams.json");
  await Bun.write(file, JSON.stringify([team("a"), { ...team("w"), kind: "Widget" }]));
  const lines: string[] = [];
  const say = (msg: string, fields?: Record<string, unknown>) => lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  const logger = { debug() {}, info() {}, warn: say, error: say, child: () => logger };
  const entry = { type: "./static-objects.ts", file, kind: "Team", interval: "1h" };

  th = await startTestHost({ dir, logger, extra: { sources: [entry] } });
  await waitFor(async () => (await objects(th!))?.includes("Team a") === true, 5_000);
  expect(await objects(th)).toEqual(["Team a"]);
  expect(th.host.metrics.render()).toContain('kubemeta_changes_rejected_total{reason="other_kind"} 1');
  expect(lines.filter((l) => l.includes("Widget"))).toEqual([
    `skipped a change of another kind than its relist's ${JSON.stringify({
      resource: `file:${file}`,
      kind: "Widget",
      relisted: "Team",
    })}`,
  ]);
  await th.stop();

  // Taken out of the config, nothing of it stays.
  th = await startTestHost({ dir, logger });
  await waitFor(async () => (await objects(th!))?.length === 0, 5_000, "every object of the source deleted");
});
