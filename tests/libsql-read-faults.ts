/**
 * Child of store-libsql-malloc.test.ts, a fresh process each: reads every update of a store file in pages, as the
 * store's log reads do, and prints the page faults a row took after a first pass, with glibc's bounds kept by the
 * store (`kept`) or as glibc sets them (`plain`).
 *
 *   bun tests/libsql-read-faults.ts <file> kept|plain
 */
import { createClient } from "@libsql/client";
import { ALL } from "../protocol/streams.ts";
import { keepSqliteAllocations } from "../plugins/stores/libsql/malloc.ts";
import { readUpdates } from "../plugins/stores/libsql/read.ts";

const [file, mode] = process.argv.slice(2);
const PAGE = 2_000;
const PASSES = 3;

const minorFaults = () => process.resourceUsage().minorPageFault;

const kept = mode === "kept" ? keepSqliteAllocations() : false;
const client = createClient({ url: `file:${file}` });
async function readAll(): Promise<number> {
  let rows = 0;
  for (let after = 0; ; ) {
    const page = await readUpdates(client, { stream: ALL, after, limit: PAGE });
    if (page.length === 0) return rows;
    rows += page.length;
    after = page[page.length - 1]!.version;
  }
}
await readAll();
const before = minorFaults();
let rows = 0;
for (let pass = 0; pass < PASSES; pass++) rows += await readAll();
client.close();
console.log(JSON.stringify({ kept, faultsPerRow: (minorFaults() - before) / rows }));
