/**
 * Bun quirk: with `BUN_JSC_useJITDump=1`, JavaScriptCore writes the JIT dump `perf inject --jit` reads, but names it
 * `jit-<n>-<pid>.dump`, and perf takes only `jit-<pid>.dump` (its jit_detect: the number after `jit-` must be the
 * process's, `.dump` right after it), so perf names none of the JavaScript it sampled. scripts/jitdump-perf-map.ts
 * turns the dump into `/tmp/perf-<pid>.map`, which perf reads as it is (README, Benchmarks: "Profiling").
 */
import { expect, test } from "bun:test";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { perfMapOf } from "../scripts/jitdump-perf-map.ts";
import { tempDir } from "../testing/index.ts";

/** Runs a function long enough for the JIT's optimizing tiers to compile it, then prints the process's pid. */
const HOT = `
function hotLoopToBeNamed(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }
let total = 0;
const end = Date.now() + 1000;
while (Date.now() < end) total += hotLoopToBeNamed(10000);
console.log(JSON.stringify({ pid: process.pid, ran: total > 0 }));
`;

test("Bun quirk: JavaScriptCore's JIT dump is not named as perf looks for it; the script names its functions", async () => {
  const dir = await tempDir("kubemeta-jitdump-");
  try {
    const env = { ...process.env, BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: dir };
    const child = Bun.spawn([process.execPath, "-e", HOT], { env, stdout: "pipe" });
    const { pid, ran } = JSON.parse(await new Response(child.stdout).text()) as { pid: number; ran: boolean };
    expect(await child.exited).toBe(0);
    expect(ran).toBe(true);

    const dumps = (await readdir(dir)).filter((name) => name.endsWith(".dump"));
    expect(dumps).toHaveLength(1);
    expect(dumps[0]).toMatch(/^jit-\d+-\d+\.dump$/);
    expect(dumps[0]).not.toBe(`jit-${pid}.dump`);

    const map = perfMapOf(await Bun.file(join(dir, dumps[0]!)).bytes());
    expect(map.pid).toBe(pid);
    const named = map.lines.filter((line) => line.includes("hotLoopToBeNamed"));
    // Baseline at least, and an optimizing tier (DFG or FTL) for a loop this hot.
    expect(named.some((line) => /JSC-(DFG|FTL): hotLoopToBeNamed/.test(line))).toBe(true);
    for (const line of named) {
      const [start, size] = line.split(" ");
      expect(Number.parseInt(start!, 16)).toBeGreaterThan(0);
      expect(Number.parseInt(size!, 16)).toBeGreaterThan(0);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a dump that is not one is refused, not read as garbage", () => {
  expect(() => perfMapOf(new TextEncoder().encode("not a JIT dump at all, but forty bytes long."))).toThrow(
    "not a little-endian JIT dump",
  );
});
