/**
 * Worker threads that do bulk work (parsing, the store's writer and its checkpointer) give way to the event loop's
 * thread when the cores are short: that thread answers /healthz, serves readers and feeds every worker, so a worker
 * that takes its turn first only delays everything behind it. On Linux the nice value is per thread (setpriority(2),
 * NOTES), and raising it needs no privilege; elsewhere, or where libc cannot be loaded, threads keep the process's.
 */
import { dlopen, FFIType } from "bun:ffi";

/** Lets timers and I/O run before going on: what a long run of work on the event loop's thread does between slices. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** How much nicer a worker thread is than the process: CFS gives a runnable thread 5 nicer a third of the share. */
export const WORKER_NICE_STEP = 5;

const PRIO_PROCESS = 0;
/** With PRIO_PROCESS, `who` 0 is the calling thread: Linux keeps a nice value per thread. */
const THIS_THREAD = 0;

/** Makes the calling thread `step` nicer than it is; false when the platform did not take it. */
export function yieldCoresToEventLoop(step = WORKER_NICE_STEP): boolean {
  if (process.platform !== "linux") return false;
  try {
    const libc = dlopen("libc.so.6", {
      getpriority: { args: [FFIType.i32, FFIType.u32], returns: FFIType.i32 },
      setpriority: { args: [FFIType.i32, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    });
    try {
      const nice = libc.symbols.getpriority(PRIO_PROCESS, THIS_THREAD);
      return libc.symbols.setpriority(PRIO_PROCESS, THIS_THREAD, Math.min(19, nice + step)) === 0;
    } finally {
      libc.close();
    }
  } catch {
    return false;
  }
}
