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
import { runBun } from "./reliability-process.ts";

/** Runs a function long enough for the JIT's optimizing tiers to compile it, then prints the process's pid. */
const HOT = `
function hotLoopToBeNamed(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }
let total = 0;
const end = Date.now() + 1000;
while (Date.now() < end) total += hotLoopToBeNamed(10000);
console.log(JSON.stringify({ pid: process.pid, ran: total > 0 }));
`;

test("Bun quirk: JavaScriptCore's JIT dump is not named as perf looks for it; the script names its code", async () => {
  const dir = await tempDir("kubemeta-jitdump-");
  try {
    const env = { ...process.env, BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: dir };
    const { code, stdout } = await runBun(["-e", HOT], env);
    expect(code).toBe(0);
    const { pid, ran } = JSON.parse(stdout) as { pid: number; ran: boolean };
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

/** A JIT dump of process `pid` loading each `[address, size, name]` in turn (the format perf documents). */
function dumpOf(pid: number, loads: [number, number, string][]): Uint8Array {
  const encoder = new TextEncoder();
  const records = loads.map(([address, size, name]) => {
    const nameBytes = encoder.encode(`${name}\0`);
    const record = new DataView(new ArrayBuffer(16 + 40 + nameBytes.length));
    record.setUint32(0, 0, true);
    record.setUint32(4, record.byteLength, true);
    record.setUint32(16, pid, true);
    record.setBigUint64(32, BigInt(address), true);
    record.setBigUint64(40, BigInt(size), true);
    new Uint8Array(record.buffer).set(nameBytes, 56);
    return new Uint8Array(record.buffer);
  });
  const header = new DataView(new ArrayBuffer(40));
  header.setUint32(0, 0x4a695444, true);
  header.setUint32(4, 1, true);
  header.setUint32(8, 40, true);
  header.setUint32(20, pid, true);
  const dump = new Uint8Array(40 + records.reduce((sum, record) => sum + record.length, 0));
  dump.set(new Uint8Array(header.buffer));
  let at = 40;
  for (const record of records) {
    dump.set(record, at);
    at += record.length;
  }
  return dump;
}

test("code loaded where thrown-away code was is named alone: the map keeps the last load at each address", () => {
  const map = perfMapOf(
    dumpOf(42, [
      [0x1000, 0x100, "JSC-Baseline: old#A"],
      [0x2000, 0x40, "JSC-Thunk: kept"],
      [0x1080, 0x20, "JSC-FTL: new#B"],
    ]),
  );
  expect(map).toEqual({ pid: 42, lines: ["1080 20 JSC-FTL: new#B", "2000 40 JSC-Thunk: kept"] });
});

test("a dump that is not one is refused, not read as garbage", () => {
  expect(() => perfMapOf(new TextEncoder().encode("not a JIT dump at all, but forty bytes long."))).toThrow(
    "not a little-endian JIT dump",
  );
});
