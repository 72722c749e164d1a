/**
 * Names the JavaScript in `perf` profiles: turns the JIT dumps JavaScriptCore writes (`BUN_JSC_useJITDump=1`) into
 * the map files `perf report` reads for code it finds in no binary (`/tmp/perf-<pid>.map`). JavaScriptCore writes
 * the dump but does not announce it to perf the way `perf inject --jit` expects, which then names nothing
 * (README, "Bun quirks"). `bun --cpu-prof` samples from a thread of its own, which a busy two-core machine leaves
 * waiting: perf's samples come from the timer interrupt, so they hold under load (README, Benchmarks: "Profiling").
 *
 *   BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=/tmp/jit perf record -a -F 499 -o /tmp/perf.data -- bun bench/ingest.ts
 *   bun scripts/jitdump-perf-map.ts /tmp/jit
 *   perf report -i /tmp/perf.data --tid <a thread of kubemeta> --sort dso,sym
 */
import { appendFile, readdir } from "node:fs/promises";
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

export function perfMapOf(dump: Uint8Array): PerfMap {
  const view = new DataView(dump.buffer, dump.byteOffset, dump.byteLength);
  if (dump.byteLength < 40 || view.getUint32(0, true) !== MAGIC) throw new Error("not a little-endian JIT dump");
  const pid = view.getUint32(20, true);
  const lines: string[] = [];
  const decoder = new TextDecoder();
  for (let at = view.getUint32(8, true); at + RECORD_HEADER_BYTES <= dump.byteLength; ) {
    const id = view.getUint32(at, true);
    const size = view.getUint32(at + 4, true);
    // A record cut short by the process's end.
    if (size < RECORD_HEADER_BYTES || at + size > dump.byteLength) break;
    if (id === CODE_LOAD) {
      const fields = at + RECORD_HEADER_BYTES;
      const address = view.getBigUint64(fields + 16, true);
      const codeSize = view.getBigUint64(fields + 24, true);
      const nameStart = fields + CODE_LOAD_FIELDS_BYTES;
      const name = decoder.decode(dump.subarray(nameStart, dump.indexOf(0, nameStart)));
      lines.push(`${address.toString(16)} ${codeSize.toString(16)} ${name}`);
    }
    at += size;
  }
  return { pid, lines };
}

if (import.meta.main) {
  const directory = process.argv[2];
  if (!directory) throw new Error("usage: bun scripts/jitdump-perf-map.ts <BUN_JSC_jitDumpDirectory>");
  for (const file of (await readdir(directory)).filter((name) => /^jit-.*\.dump$/.test(name))) {
    const { pid, lines } = perfMapOf(await Bun.file(join(directory, file)).bytes());
    await appendFile(`/tmp/perf-${pid}.map`, lines.map((line) => `${line}\n`).join(""));
    console.log(`${file}: ${lines.length} functions of process ${pid} → /tmp/perf-${pid}.map`);
  }
}
