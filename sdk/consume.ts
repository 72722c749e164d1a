/**
 * `consume`: the delivery loop of a sink, written once. A sink supplies `deliver`, the
 * function that sends one batch of envelopes somewhere; `consume` does the rest:
 *
 * - reads its stream from the sink's durable cursor (or, the first time, from the oldest
 *   retained update or the head), filtered, in batches of at most `batch.size` updates,
 *   each as the envelope consumers see on that stream (protocol/envelope.ts);
 * - calls `deliver` with one batch at a time and saves the cursor once it resolves: at
 *   least once, in order;
 * - retries a batch whose `deliver` throws, the same batch, with exponential backoff and
 *   jitter, logging and counting each failure; nothing behind it overtakes it;
 * - goes on from the oldest retained update (or the head) when the store pruned what the
 *   sink had not delivered yet, and logs and counts the versions lost;
 * - reports a batch held longer than `stallAfterMs`; each sink reads the log on its own,
 *   so a stalled sink delays neither the source nor the other sinks;
 * - on stop, drains: delivers what is committed first (for up to `drainMs`, nothing
 *   lingering), unless its deliveries are failing.
 *
 * `batch` and `retry` come from the sink's config: its schema has the standard keys
 * `batch: batchSchema()` and `retry: retrySchema()` (sdk/schema.ts), whose output is what
 * these options take.
 *
 * Metrics, labelled `{ sink: ctx.name }`: `kubemeta_sink_lag_versions`,
 * `kubemeta_sink_delivery_failures_total{step="deliver"|"read"|"save"}`,
 * `kubemeta_sink_stalled` (1 while a batch is stalled) and `kubemeta_sink_lost_versions_total`.
 *
 * @example A sink that prints each update of a stream as a JSON line:
 * ```ts
 * import { batchSchema, consume, defineSink, retrySchema, streamName, v } from "kubemeta/sdk";
 *
 * export default defineSink({
 *   type: "stdout",
 *   description: "Prints each update as a JSON line.",
 *   schema: v.strictObject({ stream: v.optional(streamName, "all"), batch: batchSchema(), retry: retrySchema() }),
 *   create: (config, ctx) =>
 *     consume(ctx, {
 *       stream: config.stream,
 *       batch: config.batch,
 *       retry: config.retry,
 *       async deliver(envelopes) {
 *         for (const envelope of envelopes) console.log(JSON.stringify(envelope));
 *       },
 *     }),
 * });
 * ```
 */
import * as v from "valibot";
import type { Leadership, SinkContext } from "./contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { Backoff, sleep } from "../protocol/retry.ts";
import { batches, TIMED_OUT, until } from "./batches.ts";
import { ALL } from "../protocol/streams.ts";
import { inStream, toEnvelope, type Update } from "./model.ts";
import { batchSchema, retrySchema } from "./schema.ts";
import type { BatchSettings, ConsumeOptions, Consumer, RetrySettings } from "./consume-options.ts";

export type { BatchSettings, ConsumeOptions, Consumer, RetrySettings } from "./consume-options.ts";

/** The defaults of a sink whose schema leaves the keys out: one source of truth, the schemas. */
const DEFAULT_BATCH: BatchSettings = v.parse(batchSchema(), undefined);
const DEFAULT_RETRY: RetrySettings = v.parse(retrySchema(), undefined);

/**
 * How often the lag is refreshed while a batch is in delivery, and how often a cursor moved only past non-matching
 * updates is saved.
 */
const REFRESH_MS = 1_000;

/**
 * A sink (start/stop) running `options.deliver` over the log. start and stop are safe twice; stop is safe without
 * start.
 */
export function consume(ctx: SinkContext, options: ConsumeOptions): Consumer {
  const { name, logger, metrics, log } = ctx;
  const labels = { sink: name };
  const stream = options.stream ?? ALL;
  if (options.fanOut && stream !== ALL)
    throw new Error(`consume: fanOut delivers every stream, so it follows "all", not "${stream}"`);
  const { filter, fanOut } = options;
  const stallAfterMs = options.stallAfterMs ?? 60_000;
  const saveIntervalMs = options.saveIntervalMs ?? 0;
  const lag = metrics.gauge(
    "kubemeta_sink_lag_versions",
    "Versions committed but not yet delivered by a sink (log head minus the sink's position).",
  );
  const failures = metrics.counter(
    "kubemeta_sink_delivery_failures_total",
    "Failures of a sink's delivery loop, by sink and step (deliver, read, save); each is retried.",
  );
  const stalled = metrics.gauge(
    "kubemeta_sink_stalled",
    "1 while a sink has held one batch longer than its stall threshold.",
  );
  const lost = metrics.counter(
    "kubemeta_sink_lost_versions_total",
    "Versions a sink never delivered: the store pruned them before it got there (with those a sink skipped to go on).",
  );
  // From 0, not from the first event: rate() needs a sample before it.
  lost.inc(labels, 0);
  for (const step of ["deliver", "read", "save"]) failures.inc({ ...labels, step }, 0);

  const stopping = new AbortController();
  const { signal } = stopping;
  /** Aborted when stop drains: batches leave without lingering. */
  const hurrying = new AbortController();
  /** Aborts `stopWaitMs` after stop: the longest stop waits for a batch in delivery. */
  const givenUp = new AbortController();
  signal.addEventListener("abort", () => setTimeout(() => givenUp.abort(), options.stopWaitMs ?? 5_000).unref(), {
    once: true,
  });
  let running: Promise<void> | undefined;
  let lagTimer: Timer | undefined;
  /** Every version up to here is delivered or did not match; `saved` is what the store holds. */
  let delivered = 0;
  let saved = 0;
  let savedAt = 0;
  let moved = Promise.withResolvers<void>();
  /** A delivery failed or stalled since the last one that worked: a drain would only wait for it in vain. */
  let failing = false;
  let failed = Promise.withResolvers<void>();
  const struggle = () => {
    failing = true;
    failed.resolve();
    failed = Promise.withResolvers<void>();
  };

  /** False while a replica that does not lead waits for its turn: it has nothing to deliver, so no lag. */
  let delivering = !ctx.leadership;
  const showLag = () => lag.set(delivering ? Math.max(0, log.head() - delivered) : 0, labels);

  function collect(update: Update, into: Envelope[]): void {
    if (!inStream(update, stream)) return;
    const envelope = toEnvelope(log.epoch, update, stream);
    if (filter && !filter(envelope)) return;
    into.push(envelope);
    if (fanOut && update.stream !== null) into.push(toEnvelope(log.epoch, update, update.stream));
  }

  function advance(through: number): void {
    delivered = through;
    moved.resolve();
    moved = Promise.withResolvers<void>();
  }

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

  /** Delivers one batch, retrying until it works; false when the sink stopped (or lost leadership) first. */
  async function deliverBatch(envelopes: Envelope[], term: AbortSignal): Promise<boolean> {
    const first = envelopes[0]!.version;
    const last = envelopes[envelopes.length - 1]!.version;
    const backoff = new Backoff(options.retry ?? DEFAULT_RETRY);
    const stallTimer = setTimeout(() => {
      stalled.set(1, labels);
      struggle();
      logger.warn("sink has held one batch too long; it delays only itself", { first, last, heldMs: stallAfterMs });
    }, stallAfterMs);
    try {
      for (let attempt = 1; !term.aborted; attempt++) {
        try {
          // Called in a promise, so that a synchronous throw is a failure like any other.
          const attempt = (async () => options.deliver(envelopes, term))();
          // A deliver that ignores the signal is left behind when stop gives up on it.
          attempt.catch(() => {});
          if ((await until(attempt, Infinity, givenUp.signal)) === TIMED_OUT) return false;
          failing = false;
          return true;
        } catch (error) {
          if (term.aborted) return false;
          struggle();
          const delay = backoff.next();
          fail("deliver", "sink failed to deliver a batch; retrying it", {
            error,
            first,
            last,
            attempt,
            retryInMs: delay,
          });
          await sleep(delay, term);
        }
      }
      return false;
    } finally {
      clearTimeout(stallTimer);
      if (stalled.get(labels) === 1) logger.info("sink no longer holds the batch it was stalled on", { first, last });
      stalled.set(0, labels);
    }
  }

  /** Delivers from `delivered` until `term` aborts: the sink stops, or this replica stops leading. */
  async function run(saveFirst: boolean, term: AbortSignal): Promise<void> {
    // Without a saved starting point, a restart before the first delivery would start again
    // from a later head and skip what was committed in between.
    if (saveFirst) await save();
    const readRetries = new Backoff({ initialMs: 200, maxMs: 10_000 });
    const { size, lingerMs } = options.batch ?? DEFAULT_BATCH;
    const behindRetention = options.behindRetention ?? "oldest";
    while (!term.aborted) {
      try {
        for await (const batch of batches(log, {
          after: delivered,
          size,
          lingerMs,
          collect,
          behindRetention,
          signal: term,
          hurry: hurrying.signal,
        })) {
          readRetries.reset();
          if (batch.lost > 0) {
            lost.inc(labels, batch.lost);
            logger.error("sink fell behind retention; the versions in between are lost to it", {
              lost: batch.lost,
              resumeAfter: batch.through,
            });
          }
          if (batch.envelopes.length > 0) {
            if (!(await deliverBatch(batch.envelopes, term))) break;
            advance(batch.through);
            if (Date.now() - savedAt >= saveIntervalMs) await save();
          } else {
            advance(batch.through);
            if (Date.now() - savedAt >= Math.max(REFRESH_MS, saveIntervalMs)) await save();
          }
          showLag();
        }
      } catch (error) {
        const delay = readRetries.next();
        fail("read", "sink failed to read the log; retrying", { error, after: delivered, retryInMs: delay });
        await sleep(delay, term);
      }
    }
    if (delivered > saved) await save();
  }

  /** Starts delivering from the stored cursor; returns whether to save that starting point first. */
  function resumeFrom(cursor: number | undefined): boolean {
    const head = log.head();
    // Only a store restored or edited behind kubemeta's back holds a cursor past its log.
    if (cursor !== undefined && cursor > head)
      logger.warn("the sink's cursor is ahead of the log; starting at its head", { cursor, head });
    delivered = saved =
      cursor === undefined ? (options.from === "head" ? head : log.oldest() - 1) : Math.min(cursor, head);
    showLag();
    return cursor === undefined || cursor > head;
  }

  /**
   * With `ha`, one term of delivery per leadership: each starts from the cursor as the store holds it, since the
   * previous leader moved it.
   */
  async function lead(leadership: Leadership): Promise<void> {
    const retries = new Backoff({ initialMs: 200, maxMs: 10_000 });
    while (!signal.aborted) {
      const lost = await leadership.acquire(signal).catch(() => undefined);
      if (!lost) return;
      const term = AbortSignal.any([signal, lost]);
      try {
        const cursor = await ctx.cursor.load();
        delivering = true;
        await run(resumeFrom(cursor), term);
      } catch (error) {
        fail("read", "sink failed to load its cursor; retrying", { error });
        await sleep(retries.next(), term);
      } finally {
        delivering = false;
        showLag();
      }
    }
  }

  /**
   * True once every version committed now is delivered (or filtered out); false at `deadline`, or, with
   * `unlessFailing`, as soon as a delivery fails.
   */
  async function deliveredAll(deadline: number, unlessFailing: boolean): Promise<boolean> {
    const target = log.head();
    while (delivered < target) {
      if (unlessFailing && failing) return false;
      const next = unlessFailing ? Promise.race([moved.promise, failed.promise]) : moved.promise;
      if ((await until(next, deadline)) === TIMED_OUT) return false;
    }
    return true;
  }

  return {
    async start() {
      if (running || signal.aborted) return;
      stalled.set(0, labels);
      lagTimer ??= setInterval(showLag, REFRESH_MS);
      lagTimer.unref();
      if (ctx.leadership) {
        running = lead(ctx.leadership);
        return;
      }
      // A throw here (the store failing) makes the host retry start with backoff.
      const cursor = await ctx.cursor.load();
      if (running || signal.aborted) return;
      running = run(resumeFrom(cursor), signal);
    },
    async stop() {
      const drainMs = options.drainMs ?? 3_000;
      if (running && delivering && !signal.aborted && drainMs > 0 && !options.failing?.()) {
        hurrying.abort();
        await deliveredAll(Date.now() + drainMs, true);
      }
      stopping.abort();
      clearInterval(lagTimer);
      await running;
    },
    // A replica that does not lead (ha) has nothing to deliver: the leader does.
    caughtUp: async (timeoutMs) => !delivering || deliveredAll(Date.now() + timeoutMs, false),
  };
}
