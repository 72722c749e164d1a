/**
 * `consume`: the delivery loop of a sink, written once. A sink supplies `deliver`, the
 * function that sends one batch somewhere; `consume` does the rest:
 *
 * - reads its stream from the sink's durable cursor (or, the first time, from the oldest
 *   retained update or the head), filtered, in batches of at most `batchSize`;
 * - calls `deliver` with one batch at a time and saves the cursor once it resolves: at
 *   least once, in order;
 * - retries a batch whose `deliver` throws, the same batch, with exponential backoff and
 *   jitter, logging and counting each failure; nothing behind it overtakes it;
 * - goes on from the oldest retained update when the store pruned what the sink had not
 *   delivered yet, and logs and counts the versions lost;
 * - reports a batch held longer than `stallAfterMs`; each sink reads the log on its own,
 *   so a stalled sink delays neither the source nor the other sinks.
 *
 * Metrics, labelled `{ sink: ctx.name }`: `kubemeta_sink_lag_versions`,
 * `kubemeta_sink_delivery_failures_total{step="deliver"|"read"|"save"}`,
 * `kubemeta_sink_stalled` (1 while a batch is stalled) and `kubemeta_sink_lost_versions_total`.
 *
 * @example A sink that prints each update of a stream, as an envelope:
 * ```ts
 * import * as v from "valibot";
 * import { defineSink } from "./contract.ts";
 * import { consume } from "./consume.ts";
 * import { toEnvelope } from "./model.ts";
 *
 * export default defineSink({
 *   type: "stdout",
 *   description: "Prints each update as a JSON line.",
 *   schema: v.strictObject({ stream: v.optional(v.string(), "all") }),
 *   create: (config, ctx) =>
 *     consume(ctx, {
 *       stream: config.stream,
 *       async deliver(updates) {
 *         for (const update of updates) console.log(JSON.stringify(toEnvelope(ctx.log.epoch, update, config.stream)));
 *       },
 *     }),
 * });
 * ```
 */
import type { Sink, SinkContext } from "./contract.ts";
import { Backoff, sleep, type BackoffOptions } from "../protocol/retry.ts";
import { batches } from "./batches.ts";
import { ALL } from "../protocol/streams.ts";
import { inStream, type Update } from "./model.ts";

export interface ConsumeOptions {
  /** The stream to deliver: "all" (the default), "shared" or "node/<name>". */
  stream?: string;
  /** Keeps only the updates it returns true for; the cursor moves past the others all the same. */
  filter?(update: Update): boolean;
  /** Most updates in one `deliver` call (default 500). */
  batchSize?: number;
  /** How long a batch that is not full waits for more updates after its first (default 0: it leaves at once). */
  lingerMs?: number;
  /** Where a sink with no cursor yet starts: the oldest update the store retains (the default), or the next one committed. */
  from?: "oldest" | "head";
  /** A batch not delivered after this long is reported as stalled (default 60 s). */
  stallAfterMs?: number;
  /** Delays between attempts at a batch whose `deliver` threw (default 1 s doubling to 60 s, full jitter). */
  retry?: BackoffOptions;
  /**
   * On stop, how long a batch in `deliver` may take to finish (default 5 s). After that
   * `stop` returns without it; the batch is delivered again after the next start.
   */
  stopWaitMs?: number;
  /**
   * Sends one batch (never empty; shared with other readers: do not modify it). Resolve
   * once it is delivered: the cursor then moves past it. Throw to have it retried.
   * `signal` aborts when the sink stops: give up then, by throwing (e.g.
   * `signal.throwIfAborted()`); the batch is sent again after the next start.
   */
  deliver(updates: Update[], signal: AbortSignal): Promise<void>;
}

/** How often the lag is refreshed while a batch is in delivery, and how often a cursor moved only past non-matching updates is saved. */
const REFRESH_MS = 1_000;
const GAVE_UP = Symbol("gave up");

/** A sink (start/stop) running `options.deliver` over the log. start and stop are safe twice; stop is safe without start. */
export function consume(ctx: SinkContext, options: ConsumeOptions): Sink {
  const { name, logger, metrics, log } = ctx;
  const labels = { sink: name };
  const stream = options.stream ?? ALL;
  const matches = (update: Update) => inStream(update, stream) && (options.filter?.(update) ?? true);
  const stallAfterMs = options.stallAfterMs ?? 60_000;
  const lag = metrics.gauge("kubemeta_sink_lag_versions", "Versions committed but not yet delivered by a sink (log head minus the sink's position).");
  const failures = metrics.counter("kubemeta_sink_delivery_failures_total", "Failures of a sink's delivery loop, by sink and step (deliver, read, save); each is retried.");
  const stalled = metrics.gauge("kubemeta_sink_stalled", "1 while a sink has held one batch longer than its stall threshold.");
  const lost = metrics.counter("kubemeta_sink_lost_versions_total", "Versions a sink never delivered: the store pruned them before it got there.");

  const stopping = new AbortController();
  const { signal } = stopping;
  /** Resolves `stopWaitMs` after stop: the longest stop waits for a batch in delivery. */
  const givenUp = new Promise<typeof GAVE_UP>((resolve) =>
    signal.addEventListener("abort", () => setTimeout(resolve, options.stopWaitMs ?? 5_000, GAVE_UP).unref(), { once: true }),
  );
  let running: Promise<void> | undefined;
  let lagTimer: Timer | undefined;
  /** Every version up to here is delivered or did not match; `saved` is what the store holds. */
  let delivered = 0;
  let saved = 0;
  let savedAt = 0;

  const showLag = () => lag.set(Math.max(0, log.head() - delivered), labels);

  function fail(step: "deliver" | "read" | "save", message: string, fields: Record<string, unknown>): void {
    failures.inc({ ...labels, step });
    logger.error(message, fields);
  }

  async function save(): Promise<void> {
    const version = delivered;
    try {
      await ctx.cursor.save(version);
      saved = version;
      savedAt = Date.now();
    } catch (error) {
      // The next save carries a later position; until then a restart delivers a little again.
      fail("save", "saving the sink's cursor failed", { error, version });
    }
  }

  /** Delivers one batch, retrying until it works; false when the sink stopped first. */
  async function deliverBatch(updates: Update[]): Promise<boolean> {
    const first = updates[0]!.version;
    const last = updates[updates.length - 1]!.version;
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000, ...options.retry });
    const stallTimer = setTimeout(() => {
      stalled.set(1, labels);
      logger.warn("sink has held one batch too long; it delays only itself", { first, last, heldMs: stallAfterMs });
    }, stallAfterMs);
    try {
      for (let attempt = 1; !signal.aborted; attempt++) {
        try {
          // Called in a promise, so that a synchronous throw is a failure like any other.
          const delivering = (async () => options.deliver(updates, signal))();
          // A deliver that ignores the signal is left behind when stop gives up on it.
          delivering.catch(() => {});
          if ((await Promise.race([delivering, givenUp])) === GAVE_UP) return false;
          return true;
        } catch (error) {
          if (signal.aborted) return false;
          const delay = backoff.next();
          fail("deliver", "sink failed to deliver a batch; retrying it", { error, first, last, attempt, retryInMs: delay });
          await sleep(delay, signal);
        }
      }
      return false;
    } finally {
      clearTimeout(stallTimer);
      if (stalled.get(labels) === 1) logger.info("sink no longer holds the batch it was stalled on", { first, last });
      stalled.set(0, labels);
    }
  }

  async function run(firstStart: boolean): Promise<void> {
    // Without a saved starting point, a restart before the first delivery would start again
    // from a later head and skip what was committed in between.
    if (firstStart) await save();
    const readRetries = new Backoff({ initialMs: 200, maxMs: 10_000 });
    const lingerMs = options.lingerMs ?? 0;
    const batchSize = options.batchSize ?? 500;
    while (!signal.aborted) {
      try {
        for await (const batch of batches(log, { after: delivered, batchSize, lingerMs, matches, signal })) {
          readRetries.reset();
          if (batch.lost > 0) {
            lost.inc(labels, batch.lost);
            logger.error("sink fell behind retention; the versions in between are lost to it", { lost: batch.lost, resumeAfter: batch.through });
          }
          if (batch.updates.length > 0) {
            if (!(await deliverBatch(batch.updates))) break;
            delivered = batch.through;
            await save();
          } else {
            delivered = batch.through;
            if (Date.now() - savedAt >= REFRESH_MS) await save();
          }
          showLag();
        }
      } catch (error) {
        const delay = readRetries.next();
        fail("read", "sink failed to read the log; retrying", { error, after: delivered, retryInMs: delay });
        await sleep(delay, signal);
      }
    }
    if (delivered > saved) await save();
  }

  return {
    async start() {
      if (running || signal.aborted) return;
      // A throw here (the store failing) makes the host retry start with backoff.
      const cursor = await ctx.cursor.load();
      if (running || signal.aborted) return;
      delivered = saved = cursor ?? (options.from === "head" ? log.head() : log.oldest() - 1);
      stalled.set(0, labels);
      showLag();
      lagTimer = setInterval(showLag, REFRESH_MS);
      lagTimer.unref();
      running = run(cursor === undefined);
    },
    async stop() {
      stopping.abort();
      clearInterval(lagTimer);
      await running;
    },
  };
}
