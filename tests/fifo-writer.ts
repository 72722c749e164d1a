/** A FIFO for tests that show it is never read, and a late writer that keeps them from hanging where it is. */
import { expect } from "bun:test";

/**
 * Makes a FIFO at `path`. Read synchronously (what the code under test must not do), it would block the reading
 * thread, the test's own, for ever: a writer that comes after 5 s, and again every second (a reader sees the end of
 * one write before the next), lets such a read go with `text`, so that the test fails rather than hangs. `stop`
 * kills the writer: call it last, once nothing may read the FIFO any more.
 */
export function fifoWithLateWriter(path: string, text: string): { stop(): Promise<void> } {
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const loop = 'sleep 5; while :; do printf %s "$1" > "$2"; sleep 1; done';
  const writer = Bun.spawn(["sh", "-c", loop, "sh", text, path]);
  return {
    async stop() {
      writer.kill();
      await writer.exited;
    },
  };
}
