/**
 * What `consume` (sdk/consume.ts) takes: a sink's `deliver` and how it reads, batches, retries, drains and stops.
 */
import type { Envelope } from "../protocol/envelope.ts";
import type { Sink } from "./contract.ts";

/** How long a sink's stop goes on delivering what is committed, by default (README, Lifecycle). */
export const DRAIN_MS = 3_000;
/**
 * How long a drain waits on one read of the log. The log's memory answers at once, a store within tens of milliseconds
 * (bench/RESULTS.md); one that has not answered by then is taken for a store that stopped answering, whose read is
 * given up only after 10 s (STORE_UNANSWERED_MS): a drain would wait on it in vain.
 */
export const DRAIN_READ_WAIT_MS = 500;

/** `consume`'s `batch` option: the output of the `batch` config key (`batchSchema`). */
export interface BatchSettings {
  /** Most updates in one `deliver` call. */
  size: number;
  /** How long a batch that is not full waits for more updates after its first (0: it leaves at once). */
  lingerMs: number;
}

/** `consume`'s `retry` option: the output of the `retry` config key (`retrySchema`). */
export interface RetrySettings {
  /** Ceiling of the first delay; it doubles at each attempt (full jitter). */
  initialMs: number;
  /** Largest ceiling of a delay. */
  maxMs: number;
}

export interface ConsumeOptions {
  /** The stream to deliver: "all" (the default), "shared" or "node/<name>". */
  stream?: string;
  /**
   * With stream "all": each update is delivered once per stream it is in, its `all`
   * envelope followed by its envelope on its own stream (`shared` or `node/<name>`) if it
   * has one, each with that stream's `prev`. For a sink that publishes every stream at once.
   */
  fanOut?: boolean;
  /**
   * Keeps only the updates whose envelope on `stream` it returns true for (with `fanOut`,
   * both envelopes go or neither); the cursor moves past the others all the same. One that
   * throws is retried as a failed read is (`step="filter"`): nothing is skipped past it.
   */
  filter?(envelope: Envelope): boolean;
  /** Batch size and linger (default 500 updates, 0 ms): the `batch` config key. */
  batch?: BatchSettings;
  /**
   * Delays between attempts at a batch whose `deliver` threw (default 1 s doubling to 60 s, full jitter): the `retry`
   * config key.
   */
  retry?: RetrySettings;
  /**
   * Where a sink with no cursor yet starts: the oldest update the store retains (the default), or the next one
   * committed after its first start (a start that failed, retried, included).
   */
  from?: "oldest" | "head";
  /**
   * Where a sink goes on when the store pruned updates it had not delivered: the oldest
   * retained update (the default: it delivers all that is left), or the head, for a sink
   * whose consumers resynchronise from a snapshot anyway once they see the gap. A sink of one `stream` is behind
   * only once the store pruned updates of that stream, and goes on from the last of them (its horizon), or the head.
   */
  behindRetention?: "oldest" | "head";
  /** A batch not delivered after this long is reported as stalled (default 60 s; Infinity: never). */
  stallAfterMs?: number;
  /**
   * Least time between two saves of the cursor after deliveries (default 0: after every
   * batch), and longest a delivered position goes unsaved, though nothing follows it. A longer one spares the store a
   * write per batch of a busy sink, at the price of delivering again up to that much after a crash; stop saves the
   * cursor all the same.
   */
  saveIntervalMs?: number;
  /**
   * On stop, how long the sink may go on delivering what is committed (a batch's linger cut short) before it stops
   * (default DRAIN_MS, 3 s; 0: it stops at once). Only a sink whose deliveries work: one retrying a failed batch, or
   * stalled on one, or retrying a failed read of the log or its filter that threw, stops at once, one whose read of the
   * log has not answered in 0.5 s (a store that stopped answering) then, and its cursor keeps the rest for the next
   * start either way.
   */
  drainMs?: number;
  /**
   * For a `deliver` that retries inside itself instead of throwing (its own policy, as the webhook's): true while its
   * attempts fail, so that stop does not drain, as for a deliver that throws.
   */
  failing?(): boolean;
  /**
   * True for an error thrown by `deliver` that the sink expects now and then and gets past by retrying, such as its
   * connection dropping under a batch (the NATS sink's): said as a warning instead of an error (when it is said: the
   * first failure of a run, or a new cause), counted the same.
   */
  transient?(error: unknown): boolean;
  /**
   * On stop, how long a batch in `deliver` may take to finish (default 5 s). After that
   * `stop` returns without it; the batch is delivered again after the next start.
   */
  stopWaitMs?: number;
  /**
   * Sends one batch of envelopes (never empty; shared with other readers: do not modify
   * it). Resolve once it is delivered: the cursor then moves past it. Throw to have it
   * retried. `signal` aborts when the sink stops (or, with `ha`, this replica stops leading): give up
   * then, by throwing (e.g. `signal.throwIfAborted()`); the batch is sent again after the next start.
   */
  deliver(envelopes: Envelope[], signal: AbortSignal): Promise<void>;
}

/** A sink run by `consume`. */
export interface Consumer extends Sink {
  /**
   * Resolves true once every version committed when it was called is delivered (or
   * filtered out), false if that takes longer than `timeoutMs`: for a stop that lets what
   * is committed out first. False too once it has waited 0.5 s on one read of the store (a store that stopped
   * answering holds it up to 10 s). True at once on a replica that does not lead (`ha`): the leader delivers.
   */
  caughtUp(timeoutMs: number): Promise<boolean>;
}

/**
 * Throws what of `batch` and `retry` no schema of the SDK would give (a plugin that passes its own numbers): a retry of
 * 0 ms would call a receiver that is down without a pause, hundreds of times a second.
 */
export function checkSettings({ batch, retry }: Pick<ConsumeOptions, "batch" | "retry">): void {
  if (retry && !(retry.initialMs >= 1 && retry.maxMs >= retry.initialMs))
    throw new Error(
      `consume: retry { initialMs: ${retry.initialMs}, maxMs: ${retry.maxMs} }: initialMs is at least 1 ms and maxMs ` +
        "at least initialMs (the SDK's retrySchema gives such settings)",
    );
  if (batch && !(Number.isInteger(batch.size) && batch.size >= 1 && batch.lingerMs >= 0))
    throw new Error(
      `consume: batch { size: ${batch.size}, lingerMs: ${batch.lingerMs} }: size is a whole number from 1 and ` +
        "lingerMs at least 0 (the SDK's batchSchema gives such settings)",
    );
}
