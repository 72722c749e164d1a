/**
 * What storing an object costs SQLite itself, as a floor for the store: the same rows the store writes for an initial
 * sync (an `updates` row with the slim object's JSON, an `objects` row, in kubemeta's own schema and indexes), inserted
 * through multi-row statements prepared once as the store writes them, 5,000 rows a transaction (floor.ts,
 * TRANSACTION_ROWS), with the store's PRAGMAs and a PASSIVE checkpoint every 500 ms on the same thread, as the
 * checkpointer does. Then the same rows committed through the libsql store (its writer and checkpointer threads): the
 * ratio of CPU per row says how far the store is from SQLite's floor.
 * CPU is the process's (every thread), user and system; the system part is the kernel's: WAL writes, checkpoints and
 * fresh page-cache pages, dear on a machine whose page faults are (README, Benchmarks).
 *
 * The store runs in this process: give it the image's allocator settings (Containerfile) to measure it as deployed.
 *
 *   MIMALLOC_PURGE_DELAY=10000 MIMALLOC_PURGE_HOLES=0 bun bench/sqlite-floor.ts [--rows 150000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { newStore, podUpdate, sizeOf, slimPods, sqliteAlone, TRANSACTION_ROWS, type Spent } from "./floor.ts";
import { fmt, machine, threadCpu } from "./processes.ts";

const { values } = parseArgs({
  options: { rows: { type: "string", default: "150000" } },
});
const rows = Number(values.rows);
const uids = Array.from({ length: rows }, () => crypto.randomUUID());

function report(label: string, spent: Spent) {
  const perRow = (micros: number) => (micros / rows).toFixed(1);
  console.log(
    `${label}: ${fmt(rows)} rows in ${spent.seconds.toFixed(2)} s (${fmt(Math.round(rows / spent.seconds))}/s), ` +
      `${fmt(Math.round(spent.bytes / 2 ** 20))} MiB on disk; CPU ${perRow(spent.user + spent.system)} µs a row ` +
      `(user ${perRow(spent.user)}, system ${perRow(spent.system)})`,
  );
  return (spent.user + spent.system) / rows;
}

async function throughStore(dir: string): Promise<number> {
  const { file, store } = await newStore(dir, "store.db");
  const threadsBefore = new Map((await threadCpu(process.pid)).map(([name, cpu]) => [name, cpu]));
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let from = 0; from < rows; from += TRANSACTION_ROWS) {
    const updates = Array.from({ length: Math.min(TRANSACTION_ROWS, rows - from) }, (_, k) =>
      podUpdate(from + k, uids[from + k]!),
    );
    await store.commit({
      updates,
      digests: updates.map((u) => u.version),
      resumePoints: new Map([["pods", updates[updates.length - 1]!.resourceVersion]]),
    });
  }
  const used = process.cpuUsage(cpu);
  const spent = { seconds: (performance.now() - started) / 1000, ...used, bytes: sizeOf(file) };
  const perRow = report("the libsql store (its writer and checkpointer threads)", spent);
  const byThread = (await threadCpu(process.pid))
    .map(([name, seconds]) => [name, ((seconds - (threadsBefore.get(name) ?? 0)) * 1e6) / rows] as const)
    .filter(([, micros]) => micros >= 0.5)
    .map(([name, micros]) => `${name} ${micros.toFixed(1)}`);
  console.log(`  µs a row by thread: ${byThread.join(", ")} (the main thread also makes the rows, as above)`);
  await store.stop();
  return perRow;
}

console.log(machine());
console.log(`${fmt(rows)} slim pods of ${fmt(Math.round(slimPods[0]!.json.length))} bytes of JSON, 5,000 nodes`);
const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-sqlite-"));
try {
  const alone = report("SQLite alone (multi-row inserts, prepared once)", await sqliteAlone(dir, uids));
  const store = await throughStore(dir);
  console.log(`the store spends ${(store / alone).toFixed(2)}x SQLite's floor a row`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
