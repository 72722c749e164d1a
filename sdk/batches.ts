/**
 * Cuts the committed log into delivery batches for `consume` (core/consume.ts). It reads
 * `all`, so that a sink's position covers every version and moves past the updates its
 * stream and filter drop, and keeps the updates that match. A batch leaves when it holds
 * `batchSize` updates, or `lingerMs` after its first update arrived, whichever comes first.
 */
import type { BehindRetentionError, CommittedLog } from "./contract.ts";
import { ALL } from "../protocol/streams.ts";
import { type Update } from "./model.ts";

export interface Batch {
  /** The updates that matched, in version order; empty when nothing that was read matched. */
  updates: Update[];
  /** Every version up to this one is in this batch, in an earlier one, or did not match. */
  through: number;
  /** Versions the log no longer held when the reader came to them (it fell behind retention). */
  lost: number;
}

export interface BatchOptions {
  /** Exclusive: the first batch starts after this version. */
  after: number;
  batchSize: number;
  lingerMs: number;
  matches(update: Update): boolean;
  signal: AbortSignal;
}

const LINGER_OVER = Symbol("linger over");

/**
 * By name, not `instanceof`: a plugin outside the repository may load this file from
 * another copy of kubemeta than the one whose log throws the error.
 */
export function isBehindRetention(error: unknown): error is BehindRetentionError {
  return (error as Error | undefined)?.name === "BehindRetentionError";
}

/** Resolves with `work`, or with LINGER_OVER once `deadline` (epoch ms) has passed. */
function until<T>(work: Promise<T>, deadline: number): Promise<T | typeof LINGER_OVER> {
  let timer: Timer | undefined;
  const over = new Promise<typeof LINGER_OVER>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), LINGER_OVER)));
  return Promise.race([work, over]).finally(() => clearTimeout(timer));
}

/** Batches until the signal aborts. A failed read of the log is thrown: follow again from the last `through`. */
export async function* batches(log: CommittedLog, options: BatchOptions): AsyncGenerator<Batch> {
  const { batchSize, lingerMs, matches, signal } = options;
  let scanned = options.after;
  let pending: Update[] = [];
  let lingerEnds = 0;
  const take = (through: number): Batch => {
    const updates = pending;
    pending = [];
    return { updates, through, lost: 0 };
  };

  while (!signal.aborted) {
    const reader = log.follow({ stream: ALL, after: scanned, signal })[Symbol.asyncIterator]();
    // Kept across a linger timeout: a reader serves one next() at a time.
    let next: Promise<IteratorResult<Update[]>> | undefined;
    try {
      for (;;) {
        if (!next) {
          next = reader.next();
          // It may settle while a batch is being delivered; it is awaited (and any error seen) after that.
          next.catch(() => {});
        }
        const result = pending.length > 0 ? await until(next, lingerEnds) : await next;
        if (result === LINGER_OVER) {
          yield take(scanned);
          continue;
        }
        next = undefined;
        if (result.done) break;
        for (const update of result.value) {
          scanned = update.version;
          if (!matches(update)) continue;
          if (pending.length === 0) lingerEnds = Date.now() + lingerMs;
          pending.push(update);
          if (pending.length >= batchSize) yield take(update.version);
        }
        if (pending.length === 0) yield take(scanned);
      }
    } catch (error) {
      if (!isBehindRetention(error)) throw error;
      // What was read before the log moved on is still delivered; then the position jumps.
      if (pending.length > 0) yield take(scanned);
      const skipTo = error.oldest - 1;
      yield { updates: [], through: skipTo, lost: skipTo - scanned };
      scanned = skipTo;
    } finally {
      void reader.return?.();
    }
  }
}
