/**
 * One replica (no `ha`) whose store another kubemeta has taken over: it stops its sources (and its retention, which
 * the store refuses anyway: tests/store-libsql-fencing.test.ts), so that it loads the API server for nothing no more.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { SDK } from "./reliability-process.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0).reverse()) await th.destroy();
});

/** A source that writes "stopped" to its file when stopped. */
const MARKING_SOURCE = `
import { appendFile } from "node:fs/promises";
import { defineSource, v } from ${JSON.stringify(SDK)};
export default defineSource({
  type: "marking",
  description: "Says when it is stopped.",
  schema: v.strictObject({ file: v.string() }),
  create: (config, ctx) => ({
    async start() {
      ctx.synced();
    },
    async stop() {
      await appendFile(config.file, "stopped\\n");
    },
  }),
});
`;

/** A first host with the marking source, then a second on the same store: the second takes the store's term. */
async function twoOnOneStore(retention: Record<string, unknown> = {}) {
  const dir = await tempDir();
  const marks = join(dir, "marks");
  await Bun.write(join(dir, "marking.ts"), MARKING_SOURCE);
  const first = await startTestHost({ dir, extra: { sources: [{ type: "./marking.ts", file: marks }] }, retention });
  hosts.push(first);
  const second = await startTestHost({ dir });
  hosts.push(second);
  return { first, second, marks };
}

test("fenced by a second kubemeta on its store, a replica stops its sources and is not ready", async () => {
  const { first, marks } = await twoOnOneStore();

  // Its next commit is refused: the second took the store's term.
  first.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await waitFor(async () => (await fetch(`${first.url}/readyz`)).status === 503, 5_000, "the first not ready");
  await waitFor(() => Bun.file(marks).exists(), 5_000, "the first's source to be stopped");
  expect(await Bun.file(marks).text()).toBe("stopped\n");
});

test("committing nothing itself, it learns from its refused retention, and steps aside all the same", async () => {
  const { first, second, marks } = await twoOnOneStore({ maxUpdates: 1, interval: "20ms" });
  for (const name of ["a", "b", "c"]) second.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await second.changes.flush();

  // No commit of its own: its retention, with something to prune by its policy, meets the second's term.
  await waitFor(async () => (await fetch(`${first.url}/readyz`)).status === 503, 5_000, "the first not ready");
  const readiness = (await (await fetch(`${first.url}/readyz`)).json()) as { waiting: string[] };
  expect(readiness.waiting).toEqual([expect.stringMatching(/^store not writable: .*no longer the store's/)]);
  await waitFor(() => Bun.file(marks).exists(), 5_000, "the first's source to be stopped");
  // The second's log is whole: the first's policy (one update) pruned none of it.
  const page = (await (await fetch(`${second.url}/v1/updates?since=${second.host.epoch}:0`)).json()) as {
    items: { name: string }[];
  };
  expect(page.items.map((u) => u.name)).toEqual(["a", "b", "c"]);
});

/** What `failed` rejected with, or undefined if it did not within `ms`. */
async function failure(th: TestHost, ms: number): Promise<Error | undefined> {
  return Promise.race([th.host.failed.catch((error: Error) => error), Bun.sleep(ms).then(() => undefined)]);
}

test.each([
  ["emptied (its tables dropped)", "DROP TABLE meta", "gone (the store is empty)"],
  [
    "given a new epoch (new-epoch, run against a remote one)",
    "UPDATE meta SET epoch = 'e2', term = term + 1",
    "now e2",
  ],
])("a store %s under a replica: it stops as for a store replaced, not fenced for good", async (_, sql, said) => {
  const th = await startTestHost();
  hosts.push(th);
  const client = createClient({ url: `file:${join(th.dir, "kubemeta.db")}` });
  // The host may hold the write lock a moment (its first commits, a checkpoint): wait for it as a tool would.
  await client.execute("PRAGMA busy_timeout = 5000");
  await client.execute(sql);
  client.close();

  // Its next commit is refused; the store it now finds is not the one its log is of, and a restart serves that one.
  th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  const error = await failure(th, 5_000);
  expect(error?.message ?? "not stopped within 5 s").toContain(
    `the store was replaced: its epoch is ${said}, this process's log is of epoch`,
  );
});

/**
 * A store plugin whose prune is refused as a deposed writer's, with `error` thrown: `WriterFencedError` as imported
 * from the SDK, or `ForeignFenced`, the same class as another copy of kubemeta's SDK defines it.
 */
const fencedAtPrune = (error: string) => `
import libsql from ${JSON.stringify(join(import.meta.dir, "..", "plugins", "stores", "libsql.ts"))};
import { defineStore, WriterFencedError } from ${JSON.stringify(SDK)};
class ForeignFenced extends Error {
  constructor(term, storedTerm) {
    super(\`commit refused: this writer's term \${term} is no longer the store's (term \${storedTerm})\`);
    this.name = "WriterFencedError";
    this.term = term;
    this.storedTerm = storedTerm;
  }
}
export default defineStore({
  ...libsql,
  type: "fenced-at-prune",
  create(config, ctx) {
    const store = libsql.create(config, ctx);
    store.prune = async () => {
      throw new ${error}(1, 2);
    };
    return store;
  },
});
`;

test.each([
  ["the SDK's WriterFencedError", "WriterFencedError"],
  ["a WriterFencedError of another copy of the SDK", "ForeignFenced"],
])("a store whose prune throws %s: the term ends", async (_, error) => {
  const dir = await tempDir();
  const marks = join(dir, "marks");
  await Bun.write(join(dir, "marking.ts"), MARKING_SOURCE);
  await Bun.write(join(dir, "fenced-at-prune.ts"), fencedAtPrune(error));
  const store = {
    type: "./fenced-at-prune.ts",
    url: `file:${join(dir, "kubemeta.db")}`,
    retention: { interval: "20ms" },
  };
  const th = await startTestHost({ dir, extra: { store, sources: [{ type: "./marking.ts", file: marks }] } });
  hosts.push(th);

  // Not ready for that reason: a new store is not ready either until the first commit after the sync lands.
  const readiness = await waitFor(
    async () => {
      const response = await fetch(`${th.url}/readyz`);
      const body = (await response.json()) as { waiting: string[] };
      return response.status === 503 && body.waiting.some((reason) => reason.startsWith("store not writable"))
        ? body
        : undefined;
    },
    3_000,
    "not ready, fenced",
  );
  expect(readiness.waiting).toEqual([expect.stringMatching(/^store not writable: .*no longer the store's/)]);
  await waitFor(() => Bun.file(marks).exists(), 3_000, "its source to be stopped");
});
