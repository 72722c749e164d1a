/**
 * Bun quirk: JavaScriptCore lets its heap grow in proportion to the memory it believes the machine has, which is the
 * node's physical memory, not a container's limit. A process that holds a large state and makes garbage fast (a
 * kubemeta streaming snapshots) grows far past what it needs before collecting, up to an OOM kill under a limit.
 * `BUN_JSC_forceRAMSize` (bytes) tells it otherwise; deploy/ sets it from the container's `limits.memory`.
 */
import { expect, test } from "bun:test";
import { runBun } from "./reliability-process.ts";

/** Holds ~300 MB of strings, then decodes 2 GB of 1 KB strings it drops at once; prints the RSS that added. */
const CHURN = `
const bytes = new TextEncoder().encode("x".repeat(1000));
const decoder = new TextDecoder();
const live = [];
for (let i = 0; i < 300000; i++) { bytes[i % 1000] = 97 + (i % 26); live.push(decoder.decode(bytes)); }
Bun.gc(true);
const base = process.memoryUsage().rss;
let peak = base;
let kept = 0;
for (let i = 0; i < 2000000; i++) {
  bytes[i % 1000] = 97 + (i % 26);
  kept += decoder.decode(bytes).length;
  if (i % 5000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
}
console.log(JSON.stringify({ added: peak - base, kept, live: live.length }));
`;

async function addedBytes(env: Record<string, string>): Promise<number> {
  const { BUN_JSC_forceRAMSize: _, ...inherited } = process.env;
  const { code, stdout } = await runBun(["-e", CHURN], { ...inherited, ...env });
  expect(code).toBe(0);
  const { added, live } = JSON.parse(stdout) as { added: number; live: number };
  expect(live).toBe(300_000);
  return added;
}

test("Bun quirk: the GC sizes its heap to the machine's RAM; BUN_JSC_forceRAMSize has it collect sooner", async () => {
  const told = await addedBytes({ BUN_JSC_forceRAMSize: String(512 * 2 ** 20) });
  const untold = await addedBytes({});
  // Measured here (24 GiB): +598 MiB untold, +304 MiB told 512 MiB.
  expect(told).toBeLessThan(untold * 0.75);
}, 60_000);
