/**
 * Names the JavaScript in `perf` profiles: turns the JIT dumps JavaScriptCore writes (`BUN_JSC_useJITDump=1`) into
 * the map files `perf report` reads for code it finds in no binary (`/tmp/perf-<pid>.map`). `perf inject --jit`
 * would read the dump itself, but takes only one named `jit-<pid>.dump`, and JavaScriptCore names it
 * `jit-<n>-<pid>.dump` (README, "Bun quirks"). `bun --cpu-prof` samples from a thread of its own, which a busy
 * two-core machine leaves waiting: perf's samples come from the timer interrupt, so they hold under load (README,
 * Benchmarks: "Profiling").
 *
 *   BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=/tmp/jit perf record -a -g -F 499 -o /tmp/perf.data -- \
 *     bun bench/ingest.ts
 *   bun scripts/jitdump-perf-map.ts /tmp/jit
 *   perf report -i /tmp/perf.data --tid <a thread of kubemeta> --sort dso,sym
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";

/** The dump's format: tools/perf/Documentation/jitdump-specification.txt in Linux. */
const MAGIC = 0x4a695444;
const CODE_LOAD = 0;
const RECORD_HEADER_BYTES = 16;
/** A code load record's fields after its header: pid, tid (u32 each), vma, code address, code size, index (u64). */
const CODE_LOAD_FIELDS_BYTES = 40;

export interface PerfMap {
  /** The process whose code it names. */
  pid: number;
  /** `<start> <size> <name>` lines, addresses in hexadecimal: perf's map format. */
  lines: string[];
}

interface CodeRange {
  start: bigint;
  end: bigint;
  name: string;
}

/**
 * The JIT reuses the memory of code it threw away, and a map file has no time: where loads overlap, only the last
 * stays, so that a sample is named after the code that lived there last rather than after any that once did.
 */
function lastLoads(loads: CodeRange[]): CodeRange[] {
  const kept: CodeRange[] = [];
  for (const load of loads) {
    for (let i = kept.length - 1; i >= 0; i--) {
      if (kept[i]!.start < load.end && load.start < kept[i]!.end) kept.splice(i, 1);
    }
    kept.push(load);
  }
  return kept.sort((a, b) => (a.start < b.start ? -1 : 1));
}

export function perfMapOf(dump: Uint8Array): PerfMap {
  const view = new DataView(dump.buffer, dump.byteOffset, dump.byteLength);
  if (dump.byteLength < 40 || view.getUint32(0, true) !== MAGIC) throw new Error("not a little-endian JIT dump");
  const pid = view.getUint32(20, true);
  const loads: CodeRange[] = [];
  const decoder = new TextDecoder();
  for (let at = view.getUint32(8, true); at + RECORD_HEADER_BYTES <= dump.byteLength; ) {
    const id = view.getUint32(at, true);
    const size = view.getUint32(at + 4, true);
    // A record cut short by the process's end.
    if (size < RECORD_HEADER_BYTES || at + size > dump.byteLength) break;
    if (id === CODE_LOAD) {
      const fields = at + RECORD_HEADER_BYTES;
      const start = view.getBigUint64(fields + 16, true);
      const end = start + view.getBigUint64(fields + 24, true);
      const nameStart = fields + CODE_LOAD_FIELDS_BYTES;
      loads.push({ start, end, name: decoder.decode(dump.subarray(nameStart, dump.indexOf(0, nameStart))) });
    }
    at += size;
  }
  const lines = lastLoads(loads).map(
    ({ start, end, name }) => `${start.toString(16)} ${(end - start).toString(16)} ${name}`,
  );
  return { pid, lines };
}

if (import.meta.main) {
  const directory = process.argv[2];
  if (!directory) {
    process.stderr.write("usage: bun scripts/jitdump-perf-map.ts <the BUN_JSC_jitDumpDirectory of the run>\n");
    process.exit(2);
  }
  try {
    for (const file of (await readdir(directory)).filter((name) => /^jit-.*\.dump$/.test(name))) {
      const { pid, lines } = perfMapOf(await Bun.file(join(directory, file)).bytes());
      await Bun.write(`/tmp/perf-${pid}.map`, lines.map((line) => `${line}\n`).join(""));
      console.log(`${file}: ${lines.length} functions of process ${pid} → /tmp/perf-${pid}.map`);
    }
  } catch (error) {
    process.stderr.write(`jitdump-perf-map: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
