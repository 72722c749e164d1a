/**
 * Cuts the committed log into delivery batches for `consume` (sdk/consume.ts). It reads
 * `all`, so that a sink's position covers every version and moves past the updates its
 * stream and filter drop, and keeps the envelopes `collect` makes of the others. A batch
 * leaves when it holds `size` updates, or `lingerMs` after its first update arrived,
 * whichever comes first. Behind retention, a sink of one stream lost only what retention removed of that stream:
 * it reads its stream up to the log's horizon (its updates kept there, objects' states, delivered), and counts as lost
 * only the versions through its stream's horizon.
 */
import { isBehindRetention, type CommittedLog } from "./contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { ALL } from "../protocol/streams.ts";
import type { Update } from "./model.ts";
import { ownStreamBehind } from "./batches-behind.ts";

export interface Batch {
  /** The envelopes of the updates that matched, in version order; empty when nothing that was read matched. */
  envelopes: Envelope[];
  /** Every version up to this one is in this batch, in an earlier one, or did not match. */
  through: number;
  /**
   * Versions skipped because the reader fell behind retention: those the log no longer held (with a `stream` other
   * than `all`, through the last of that stream's it removed), and with `behindRetention: "head"` the rest up to the
   * head.
   */
  lost: number;
}

export interface BatchOptions {
  /** Exclusive: the first batch starts after this version. */
  after: number;
  /** Most updates in one batch (an update may make more than one envelope). */
  size: number;
  /** The sink's stream (default `all`): behind retention, what it lost is what retention removed of it. */
  stream?: string;
  lingerMs: number;
  /** Appends the envelopes that deliver `update` to `into`; none when it does not match. */
  collect(update: Update, into: Envelope[]): void;
  /** Where reading goes on after the log pruned what was not read yet: its oldest update, or its head. */
  behindRetention: "oldest" | "head";
  signal: AbortSignal;
  /** Once aborted, nothing lingers: what was read leaves at once (a sink that drains before it stops). */
  hurry?: AbortSignal;
}

/** Batches until the signal aborts. A failed read of the log is thrown: follow again from the last `through`. */
export async function* batches(log: CommittedLog, options: BatchOptions): AsyncGenerator<Batch> {
  const { size, collect, signal, hurry } = options;
  const stream = options.stream ?? ALL;
  // A sink of one stream is behind when its stream is: its read of that stream says so (and counts it), not this one.
  const oneStream = stream !== ALL;
  const currentLinger = () => (hurry?.aborted ? 0 : options.lingerMs);
  let scanned = options.after;
  let pending: Envelope[] = [];
  let pendingUpdates = 0;
  let lingerEnds = 0;
  const take = (through: number): Batch => {
    const envelopes = pending;
    pending = [];
    pendingUpdates = 0;
    return { envelopes, through, lost: 0 };
  };

  while (!signal.aborted) {
    const reader = log.follow({ stream: ALL, after: scanned, signal, noPosition: oneStream })[Symbol.asyncIterator]();
    // Kept across a linger timeout: a reader serves one next() at a time.
    let next: Promise<IteratorResult<Update[]>> | undefined;
    try {
      for (;;) {
        if (!next) {
          next = reader.next();
          // It may settle while a batch is being delivered; it is awaited (and any error seen) after that.
          next.catch(() => {});
        }
        const result = pending.length > 0 ? await until(next, lingerEnds, hurry) : await next;
        if (result === TIMED_OUT) {
          yield take(scanned);
          continue;
        }
        next = undefined;
        if (result.done) break;
        for (const update of result.value) {
          scanned = update.version;
          const before = pending.length;
          collect(update, pending);
          if (pending.length === before) continue;
          if (before === 0) lingerEnds = Date.now() + currentLinger();
          if (++pendingUpdates >= size) yield take(update.version);
        }
        // Without a linger, what was read leaves now rather than after a timer's turn.
        if (pending.length === 0 || currentLinger() === 0) yield take(scanned);
      }
    } catch (error) {
      if (!isBehindRetention(error)) throw error;
      // What was read before the log moved on is still delivered; then the position jumps.
      if (pending.length > 0) yield take(scanned);
      if (oneStream) {
        scanned = yield* ownStreamBehind(log, { ...options, stream }, scanned, error.oldest - 1);
        continue;
      }
      const skipTo = options.behindRetention === "head" ? log.head() : error.oldest - 1;
      yield { envelopes: [], through: skipTo, lost: skipTo - scanned };
      scanned = skipTo;
    } finally {
      void reader.return?.();
    }
  }
}
