/**
 * `consume`: the delivery loop of a sink, written once. A sink supplies `deliver`, the
 * function that sends one batch of envelopes somewhere; `consume` does the rest:
 *
 * - reads its stream from the sink's durable cursor (or, the first time, from the oldest
 *   retained update or the head as of its first start), filtered, in batches of at most `batch.size` updates,
 *   each as the envelope consumers see on that stream (protocol/envelope.ts);
 * - calls `deliver` with one batch at a time and saves the cursor once it resolves: at
 *   least once, in order;
 * - retries a batch whose `deliver` throws, the same batch, with exponential backoff and
 *   jitter, counting each failure; nothing behind it overtakes it. A run of failures (of
 *   `deliver`, of reading the log or the cursor) is logged as an outage (outageLog): its
 *   first failure, each new cause, a warning a minute, and a line once it works again;
 * - goes on from the oldest retained update (or the head) when the store pruned what the
 *   sink had not delivered yet (of its stream: sdk/batches-behind.ts), and logs and counts the versions lost;
 * - reports a batch held longer than `stallAfterMs`; each sink reads the log on its own,
 *   so a stalled sink delays neither the source nor the other sinks;
 * - on stop, drains: delivers what is committed first (for up to `drainMs`, nothing
 *   lingering), unless its deliveries, its reads of the log or its filter are failing.
 *
 * `batch` and `retry` come from the sink's config: its schema has the standard keys
 * `batch: batchSchema()` and `retry: retrySchema()` (sdk/schema.ts), whose output is what
 * these options take.
 *
 * Metrics, labelled `{ sink: ctx.name }`: `kubemeta_sink_lag_versions`, `kubemeta_sink_lag_seconds`,
 * `kubemeta_sink_delivery_failures_total{step="deliver"|"read"|"save"|"filter"}`,
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
import type { Leadership, SinkContext } from "./contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { Backoff, sleep, TIMED_OUT, timerDelay, until } from "../protocol/retry.ts";
import { ALL, isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";
import { inStream, toEnvelope, type Update } from "./model.ts";
import { deliveryLoop, FilterFailed, REFRESH_MS, type FailedStep } from "./consume-delivery.ts";
import { checkSettings, DRAIN_MS, type ConsumeOptions, type Consumer } from "./consume-options.ts";
import { causeOf, outageLog, sinkLag } from "./telemetry.ts";
import { lagClock } from "./consume-lag.ts";

export type { BatchSettings, ConsumeOptions, Consumer, RetrySettings } from "./consume-options.ts";

/**
 * A sink (start/stop) running `options.deliver` over the log. start and stop are safe twice; stop is safe without
 * start.
 */
export function consume(ctx: SinkContext, options: ConsumeOptions): Consumer {
  const { name, logger, metrics, log } = ctx;
  const labels = { sink: name };
  const stream = options.stream ?? ALL;
  // No update is in a stream of another name: the sink would deliver nothing, caught up to its lag, for good.
  if (!isStreamName(stream))
    throw new Error(
      `consume: stream "${stream}" is no stream: ${STREAM_NAME_RULE} (the SDK's streamName validates a config's key)`,
    );
  checkSettings(options);
  // A plugin in JavaScript meets no type: any other word would be taken for oldest, the whole log delivered again.
  for (const key of ["from", "behindRetention"] as const) {
    const where = options[key];
    if (where !== undefined && where !== "oldest" && where !== "head")
      throw new Error(`consume: ${key} ${JSON.stringify(where)} is neither "oldest" nor "head"`);
  }
  if (options.fanOut && stream !== ALL)
    throw new Error(`consume: fanOut delivers every stream, so it follows "all", not "${stream}"`);
  const { filter, fanOut } = options;
  const lag = sinkLag(metrics);
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
  for (const step of ["deliver", "read", "save", "filter"]) failures.inc({ ...labels, step }, 0);

  const stopping = new AbortController();
  const { signal } = stopping;
  /** Aborted when stop drains: batches leave without lingering. */
  const hurrying = new AbortController();
  /** Aborts `stopWaitMs` after stop: the longest stop waits for a batch in delivery. */
  const givenUp = new AbortController();
  // Past a timer's range (a plugin's Infinity: wait for the batch) a timeout would fire at once.
  const stopWaitMs = timerDelay(options.stopWaitMs ?? 5_000);
  signal.addEventListener("abort", () => setTimeout(() => givenUp.abort(), stopWaitMs).unref(), { once: true });
  let running: Promise<void> | undefined;
  let lagTimer: Timer | undefined;
  /**
   * The head as the sink first asked for its cursor: where one with none starts with `from: "head"`, though that load
   * failed and the start was retried, so that what was committed meanwhile is delivered.
   */
  let firstHead: number | undefined;
  /** False while a replica that does not lead waits for its turn: it has nothing to deliver, so no lag. */
  let delivering = !ctx.leadership;
  let shownLag = 0;
  const clock = lagClock(metrics, log, labels);
  /** `look`: the refresh's (a timer), which may read the log for the time of the first version not delivered. */
  const showLag = (look = false) => {
    shownLag = delivering ? Math.max(0, log.head() - delivery.delivered) : 0;
    lag.set(shownLag, labels);
    clock.show(delivery.delivered, shownLag, look);
  };
  const delivery = deliveryLoop(options, {
    ctx,
    labels,
    stalled,
    lost,
    count,
    collect,
    hurry: hurrying.signal,
    givenUp: givenUp.signal,
    showLag,
  });

  function collect(update: Update, into: Envelope[]): void {
    clock.read(update, delivery.delivered);
    // A sink shown caught up is behind from the moment it reads a commit, not from the next refresh: the batch may
    // linger or take long to deliver meanwhile, and a lag of 0 then would be a sinkCaughtUp (testing) that lies.
    if (shownLag === 0) showLag();
    if (!inStream(update, stream)) return;
    const envelope = toEnvelope(log.epoch, update, stream);
    if (filter && !kept(filter, envelope)) return;
    into.push(envelope);
    if (fanOut && update.stream !== null) into.push(toEnvelope(log.epoch, update, update.stream));
  }

  /** Told apart from the log's read it runs within: a plugin's own fault, said as such, the same batch read again. */
  function kept(keep: (envelope: Envelope) => boolean, envelope: Envelope): boolean {
    try {
      return keep(envelope);
    } catch (error) {
      throw new FilterFailed(error);
    }
  }

  function count(step: FailedStep): void {
    failures.inc({ ...labels, step });
  }

  function loadCursor(): Promise<number | undefined> {
    firstHead ??= log.head();
    return ctx.cursor.load();
  }

  /** Starts delivering from the stored cursor; returns whether to save that starting point first. */
  function resumeFrom(cursor: number | undefined): boolean {
    const head = log.head();
    // Only a store restored or edited behind kubemeta's back holds a cursor past its log.
    if (cursor !== undefined && cursor > head)
      logger.warn("the sink's cursor is ahead of the log; starting at its head", { cursor, head });
    const fresh = options.from === "head" ? (firstHead ?? head) : log.oldest() - 1;
    delivery.startAt(cursor === undefined ? fresh : Math.min(cursor, head));
    showLag();
    return cursor === undefined || cursor > head;
  }

  /**
   * With `ha`, one term of delivery per leadership: each starts from the cursor as the store holds it, since the
   * previous leader moved it.
   */
  async function lead(leadership: Leadership): Promise<void> {
    const retries = new Backoff({ initialMs: 200, maxMs: 10_000 });
    // Retried at that pace for as long as the store is away: its first failure said, the rest bounded.
    const loadOutage = outageLog(
      logger,
      "sink failed to load its cursor; retrying",
      "loading the sink's cursor works again",
    );
    while (!signal.aborted) {
      const leadershipLost = await leadership.acquire(signal).catch(() => undefined);
      if (!leadershipLost) return;
      const term = AbortSignal.any([signal, leadershipLost]);
      try {
        // A load the store holds keeps no stop (nor a lost term) waiting; its late cursor is dropped.
        const cursor = await until(loadCursor(), Infinity, term);
        if (cursor === TIMED_OUT) continue;
        loadOutage.succeeded();
        retries.reset();
        delivering = true;
        await delivery.run(resumeFrom(cursor), term);
      } catch (error) {
        count("read");
        const delay = retries.next();
        loadOutage.failed({ error, retryInMs: delay }, causeOf(error));
        await sleep(delay, term);
      } finally {
        delivering = false;
        showLag();
      }
    }
  }

  return {
    async start() {
      if (running || signal.aborted) return;
      stalled.set(0, labels);
      lagTimer ??= setInterval(() => showLag(true), REFRESH_MS);
      lagTimer.unref();
      if (ctx.leadership) {
        // The series is the sink's from its start (the host kept it until then), not from the timer's first tick.
        showLag();
        running = lead(ctx.leadership);
        return;
      }
      // A throw here (the store failing) makes the host retry start with backoff.
      const cursor = await loadCursor();
      if (running || signal.aborted) return;
      running = delivery.run(resumeFrom(cursor), signal);
    },
    async stop() {
      const drainMs = options.drainMs ?? DRAIN_MS;
      if (running && delivering && !signal.aborted && drainMs > 0 && !options.failing?.()) {
        hurrying.abort();
        await delivery.deliveredAll(Date.now() + drainMs, true);
      }
      stopping.abort();
      clearInterval(lagTimer);
      await running;
    },
    // A replica that does not lead (ha) has nothing to deliver: the leader does.
    caughtUp: async (timeoutMs) => !delivering || delivery.deliveredAll(Date.now() + timeoutMs, false),
  };
}
