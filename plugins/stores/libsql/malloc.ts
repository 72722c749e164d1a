/**
 * SQLite runs in this process (`file:`) inside the libsql native module, which allocates with glibc's malloc, not
 * Bun's mimalloc. glibc serves a block of 128 KiB or more with its own mmap and unmaps it when freed (raising that
 * bound as it goes), and gives the free top of its heaps back to the kernel: the strings a page of a log read or a
 * snapshot is built in (megabytes, grown by doubling) were fresh pages on every page read, about one page fault a
 * row, most of a log read's time where a fault costs 10 µs (tests/store-libsql-malloc.test.ts, bench/RESULTS.md).
 * Fixed bounds keep such blocks in the heaps for reuse. An operator's own GLIBC_TUNABLES for malloc wins.
 */
import { dlopen, FFIType } from "bun:ffi";

/** mallopt's parameters (malloc.h). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
/**
 * Blocks below it come from the heaps: a page's strings grow by doubling to 4 MiB. Both bounds are as low as kept
 * reads fast (bench/replay.ts): what the heaps hold on to is what ten snapshots at once add (bench/snapshots.ts).
 */
const MMAP_THRESHOLD = 8 << 20;
/** A heap keeps this much free at its top before it gives any back. */
const TRIM_THRESHOLD = 16 << 20;

let tuned: boolean | undefined;

/**
 * Sets glibc's bounds for the whole process (every thread's heap) once; false where there is no glibc (macOS, musl)
 * or the operator set their own. Safe twice.
 */
export function keepSqliteAllocations(): boolean {
  if (tuned !== undefined) return tuned;
  tuned = false;
  if (process.platform !== "linux" || process.env.GLIBC_TUNABLES?.includes("glibc.malloc.")) return tuned;
  try {
    const libc = dlopen("libc.so.6", { mallopt: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
    try {
      tuned =
        libc.symbols.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) === 1 &&
        libc.symbols.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) === 1;
    } finally {
      libc.close();
    }
  } catch {
    // No glibc to tune (a musl build): its malloc is another's, and nothing here applies.
  }
  return tuned;
}
