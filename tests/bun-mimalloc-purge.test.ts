/**
 * Bun quirks: Bun's allocator (mimalloc 3) gives freed memory back to the kernel on its own, so memory that is
 * allocated and dropped at a steady rate is fresh pages again and again, each one a page fault, dear on a virtual
 * machine (10–16 µs each on several of this project's machines: `bun bench/page-faults.ts`). It does so two ways:
 * - whole free pages 100 ms after they are freed (`purge_delay`): a third of an initial sync's CPU on machine B
 *   (720,000 faults against 250,000 kept 10 s, bench/RESULTS.md);
 * - the free blocks inside pages still in use, whenever a thread waits (`purge_holes`), whatever the delay: on
 *   machine N, 473 MiB given back during a sync and faulted in again (its faults fell by a third without it).
 * The image sets MIMALLOC_PURGE_DELAY=10000 and MIMALLOC_PURGE_HOLES=0 (Containerfile). How many faults that saves
 * depends on the collector's timing, so the benchmarks count them; this shows the defaults, that the allocator takes
 * the settings, and what the second one does.
 */
import { expect, test } from "bun:test";
import { IMAGE_ALLOCATOR, runBun } from "./reliability-process.ts";

const image = IMAGE_ALLOCATOR as { MIMALLOC_PURGE_DELAY: string; MIMALLOC_PURGE_HOLES: string };

/** A fresh Bun process's environment: this one's without the allocator's settings, and `env`. */
function childEnv(env: Record<string, string>): Record<string, string | undefined> {
  const { MIMALLOC_PURGE_DELAY: _, MIMALLOC_PURGE_HOLES: __, ...inherited } = process.env;
  return { ...inherited, ...env };
}

/** The allocator's options in a fresh Bun process with `env`, as mimalloc itself reports them. */
async function allocatorOptions(env: Record<string, string>): Promise<{ purgeDelay: number; purgeHoles: number }> {
  const child = Bun.spawn([process.execPath, "-e", "0"], {
    env: { ...childEnv(env), MIMALLOC_VERBOSE: "1" },
    stderr: "pipe",
  });
  const report = await new Response(child.stderr).text();
  expect(await child.exited).toBe(0);
  const option = (name: string) => Number(new RegExp(`option '${name}': (-?\\d+)`).exec(report)?.[1]);
  return { purgeDelay: option("purge_delay"), purgeHoles: option("purge_holes") };
}

test("Bun quirk: the allocator gives freed memory back on its own; the image keeps it", async () => {
  expect(image).toEqual({ MIMALLOC_PURGE_DELAY: "10000", MIMALLOC_PURGE_HOLES: "0" });
  expect(await allocatorOptions({})).toEqual({ purgeDelay: 100, purgeHoles: 1 });
  expect(await allocatorOptions(image)).toEqual({ purgeDelay: 10_000, purgeHoles: 0 });
});

/**
 * Holds 64 MiB of 20 KB strings, drops every other one (free blocks inside pages still in use), then waits on its
 * event loop until `waitMs` has passed or 8 MiB went back to the kernel (smaps_rollup counts the resident pages
 * themselves), and allocates as much again: the page faults that costs, and what went back while it waited.
 */
const HOLES = `
const bytes = Buffer.alloc(20_000, 0x78);
let held = [];
for (let i = 0; i < 3_200; i++) held.push(bytes.toString("latin1"));
held = held.filter((_, i) => i % 2 === 0);
Bun.gc(true);
const rollup = () => require("fs").readFileSync("/proc/self/smaps_rollup", "utf8");
const resident = () => Number(/^Rss:\\s+(\\d+) kB/m.exec(rollup())[1]) * 1024;
const start = resident();
const deadline = performance.now() + Number(process.argv[1]);
while (performance.now() < deadline && start - resident() < 8 << 20) await Bun.sleep(20);
const givenBack = start - resident();
const before = process.resourceUsage().minorPageFault;
for (let i = 0; i < 1_600; i++) held.push(bytes.toString("latin1"));
console.log(JSON.stringify({ givenBack, faults: process.resourceUsage().minorPageFault - before, held: held.length }));
`;

async function holes(env: Record<string, string>, waitMs: number): Promise<{ givenBack: number; faults: number }> {
  const { code, stdout } = await runBun(["-e", HOLES, String(waitMs)], childEnv(env));
  expect(code).toBe(0);
  return JSON.parse(stdout);
}

test.skipIf(process.platform !== "linux")(
  "Bun quirk: a thread that waits gives back the free blocks in its pages, whatever the delay; the image does not",
  async () => {
    const MiB = 1 << 20;
    // The allocation after the wait is 1,600 strings of 20 KB: ~7,800 pages.
    const delayOnly = await holes({ MIMALLOC_PURGE_DELAY: image.MIMALLOC_PURGE_DELAY }, 15_000);
    expect(delayOnly.givenBack).toBeGreaterThanOrEqual(8 * MiB);
    expect(delayOnly.faults).toBeGreaterThan(2_000);
    // Nothing to wait for here: two seconds are twenty times the least interval between sweeps of a thread (100 ms).
    const asImage = await holes(image, 2_000);
    expect(asImage.givenBack).toBeLessThan(4 * MiB);
    expect(asImage.faults).toBeLessThan(500);
  },
  30_000,
);
