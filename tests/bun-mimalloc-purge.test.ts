/**
 * Bun quirk: Bun's allocator (mimalloc 3) gives freed memory back to the kernel 100 ms after it is freed (its
 * `purge_delay`), so a process that allocates and drops memory at a steady rate takes a page fault on every page it
 * gets back, again and again. On a virtual machine whose page faults are dear (10–13 µs each on this project's
 * machine B: `bun bench/page-faults.ts`) that was a third of the initial sync's CPU (720,000 faults against 250,000,
 * bench/RESULTS.md). The image sets MIMALLOC_PURGE_DELAY=10000 (Containerfile): what is freed is kept 10 s for reuse.
 * How many faults that saves depends on the collector's timing, so the benchmarks count them; this shows the
 * setting and that the allocator takes it.
 */
import { expect, test } from "bun:test";

/** The allocator's purge delay in a fresh Bun process with `env`, as mimalloc itself reports its options. */
async function purgeDelay(env: Record<string, string>): Promise<number> {
  const { MIMALLOC_PURGE_DELAY: _, ...inherited } = process.env;
  const child = Bun.spawn([process.execPath, "-e", "0"], {
    env: { ...inherited, ...env, MIMALLOC_VERBOSE: "1" },
    stderr: "pipe",
  });
  const report = await new Response(child.stderr).text();
  expect(await child.exited).toBe(0);
  const delay = /option 'purge_delay': (-?\d+)/.exec(report)?.[1];
  expect(delay).toBeDefined();
  return Number(delay);
}

test("Bun quirk: freed memory goes back to the kernel after 100 ms; the image keeps it 10 s", async () => {
  const containerfile = await Bun.file(new URL("../Containerfile", import.meta.url)).text();
  const imageDelay = /\bMIMALLOC_PURGE_DELAY=(\d+)/.exec(containerfile)?.[1];
  expect(imageDelay).toBe("10000");
  expect(await purgeDelay({})).toBe(100);
  expect(await purgeDelay({ MIMALLOC_PURGE_DELAY: imageDelay! })).toBe(10_000);
});
