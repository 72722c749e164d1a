/**
 * sdk/batches.ts on a log that never runs dry: batches that linger hold nothing of what they read once it has left.
 * (Batches on a real log, lingering and hurried by a stop, are in tests/plugins-consume.test.ts.)
 */
import { expect, test } from "bun:test";
import { batches, type BatchOptions } from "../sdk/batches.ts";
import type { CommittedLog } from "../sdk/contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import type { Update } from "../sdk/model.ts";

/** A log whose follow yields one update after another, each carrying `bytes` of text, for ever. */
function endlessLog(bytes: number): CommittedLog {
  let version = 0;
  const log = {
    head: () => version,
    follow: () => ({
      async *[Symbol.asyncIterator]() {
        for (;;) {
          await Promise.resolve();
          version++;
          yield [{ version, payload: "x".repeat(bytes) } as unknown as Update];
        }
      },
    }),
  };
  return log as unknown as CommittedLog;
}

function options(overrides: Partial<BatchOptions>): BatchOptions {
  return {
    after: 0,
    size: 50,
    lingerMs: 60_000,
    behindRetention: "oldest",
    signal: new AbortController().signal,
    collect: (update, into) => void into.push({ version: update.version } as Envelope),
    ...overrides,
  };
}

test("20,000 updates of 20 KB read while batches linger: the heap keeps none of them", async () => {
  for (const hurry of [undefined, new AbortController().signal]) {
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    let taken = 0;
    for await (const batch of batches(endlessLog(20_000), options({ hurry }))) {
      // A full batch leaves at once; what it was read with leaves after it, empty, to move the position.
      if (batch.envelopes.length === 0) continue;
      expect(batch.envelopes).toHaveLength(50);
      if (++taken === 400) break;
    }
    Bun.gc(true);
    // 400 MB read; a race against a promise pending until stop kept each read alive (198 MB after a collection).
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(50_000_000);
  }
});
