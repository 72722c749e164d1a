/**
 * The delivery loop behind `consume` (sdk/consume.ts): reads the log from the sink's position in batches
 * (batches.ts), hands each to the sink's `deliver` until it resolves (batch-delivery.ts: the same batch retried with
 * backoff, a batch held past `stallAfterMs` reported), saves the cursor behind it, and tells a drain when everything
 * committed is delivered. consume.ts decides when it runs (start, stop, leadership) and shows the sink (lag,
 * metrics); this is what runs, one term of delivery at a time.
 */
import * as v from "valibot";
import { isStoreReplaced, type SinkContext } from "./contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { Backoff, sleep, TIMED_OUT, timerDelay, until } from "../protocol/retry.ts";
import { batches } from "./batches.ts";
import type { Update } from "./model.ts";
import { batchSchema } from "./schema.ts";
import { DRAIN_READ_WAIT_MS, type BatchSettings, type ConsumeOptions } from "./consume-options.ts";
import { batchDelivery } from "./batch-delivery.ts";
import { causeOf, type Counter, type Gauge, type Labels, outageLog } from "./telemetry.ts";

/** The defaults of a sink whose schema leaves the keys out: one source of truth, the schemas. */
const DEFAULT_BATCH: BatchSettings = v.parse(batchSchema(), undefined);

/**
 * How often the lag is refreshed while a batch is in delivery, and how often a cursor moved only past non-matching
 * updates is saved.
 */
export const REFRESH_MS = 1_000;

export type FailedStep = "deliver" | "read" | "save" | "filter";

/** A sink's own `filter` threw (ConsumeOptions.filter): its fault, not the log's, though it runs as the log is read. */
export class FilterFailed extends Error {
  constructor(cause: unknown) {
    super(`the sink's filter threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "FilterFailed";
  }
}

/** What the loop reads and reports to: the sink's context, and the series and signals of `consume`. */
export interface DeliveryContext {
  ctx: SinkContext;
  labels: Labels;
  /** `kubemeta_sink_stalled`. */
  stalled: Gauge;
  /** `kubemeta_sink_lost_versions_total`. */
  lost: Counter;
  /** Counts a failure, which is retried; its caller logs it (outageLog: a line per attempt would flood the log). */
  count(step: FailedStep): void;
  /** Appends the envelopes the sink gets of `update` (batches.ts). */
  collect(update: Update, into: Envelope[]): void;
  /** Once aborted (a drain), batches leave without lingering. */
  hurry: AbortSignal;
  /** Once aborted, a batch in delivery is not waited for: a deliver that ignores its signal is left behind. */
  givenUp: AbortSignal;
  /** Refreshes the lag: after each batch. */
  showLag(): void;
}

export interface DeliveryLoop {
  /** Every version up to here is delivered or did not match. */
  readonly delivered: number;
  /** Goes on from `version`: the cursor as the store holds it, or as `run` saves it first. */
  startAt(version: number): void;
  /** Delivers from `delivered` until `term` aborts: the sink stops, or this replica stops leading. */
  run(saveFirst: boolean, term: AbortSignal): Promise<void>;
  /**
   * True once every version committed now is delivered (or filtered out); false at `deadline`, once a read of the log
   * has waited DRAIN_READ_WAIT_MS, or, with `unlessFailing`, as soon as a delivery fails (or the sink's own
   * `failing()` says so).
   */
  deliveredAll(deadline: number, unlessFailing: boolean): Promise<boolean>;
}

/** How often a drain asks a sink that retries inside its `deliver` whether it is failing (ConsumeOptions.failing). */
const FAILING_POLL_MS = 50;

export function deliveryLoop(options: ConsumeOptions, context: DeliveryContext): DeliveryLoop {
  const { ctx, labels, lost, count, collect, showLag } = context;
  const { logger, log } = ctx;
  const saveIntervalMs = options.saveIntervalMs ?? 0;
  /** Every version up to here is delivered or did not match; `saved` is what the store holds. */
  let delivered = 0;
  let saved = 0;
  let savedAt = 0;
  let moved = Promise.withResolvers<void>();
  /** Since when the loop waits on the log for its next batch; undefined while it delivers or saves one. */
  let readingSince: number | undefined;
  // Saved at every batch (or second) while the store is away, for minutes maybe: its first failure is the error.
  const saveOutage = outageLog(logger, "saving the sink's cursor failed", "saving the sink's cursor works again");
  // Read again every 10 s at most for as long as the store is away: each outage's first failure, and each new cause,
  // said at once.
  const readOutage = outageLog(logger, "sink failed to read the log; retrying", "sink reading the log works again");
  const filterOutage = outageLog(logger, "sink's filter failed; retrying", "sink's filter works again");
  /**
   * A delivery, a read of the log or the sink's filter failed (or a delivery stalled) since the last that worked: a
   * drain would only wait for it in vain.
   */
  let failing = false;
  let failed = Promise.withResolvers<void>();
  const health = {
    struggle() {
      failing = true;
      failed.resolve();
      failed = Promise.withResolvers<void>();
    },
    worked() {
      failing = false;
    },
  };
  const deliverBatch = batchDelivery(options, context, health);

  function advance(through: number): void {
    delivered = through;
    moved.resolve();
    moved = Promise.withResolvers<void>();
  }

  /** The saves, one after another: the loop's and a deferred one never overlap, and each saves the latest position. */
  let saving = Promise.resolve();
  let deferred: { timer: ReturnType<typeof setTimeout>; due: number } | undefined;

  function save(): Promise<void> {
    clearTimeout(deferred?.timer);
    deferred = undefined;
    saving = saving.then(saveNow);
    return saving;
  }

  /**
   * A position left unsaved by the interval (or by a save that failed) is saved at `due`, though no batch comes after
   * it: a quiet log must not leave it unsaved for hours, all of it delivered again after a crash.
   */
  function saveLater(due: number, intervalMs: number, term: AbortSignal): void {
    if (deferred && deferred.due <= due) return;
    clearTimeout(deferred?.timer);
    const timer = setTimeout(() => void saveWithin(intervalMs, term), timerDelay(Math.max(0, due - Date.now())));
    deferred = { due, timer };
  }

  async function saveNow(): Promise<void> {
    const version = delivered;
    try {
      await ctx.cursor.save(version);
      saved = version;
      savedAt = Date.now();
      saveOutage.succeeded();
    } catch (error) {
      // Said once by the host, which stops: not an outage of this sink's.
      if (isStoreReplaced(error)) return;
      // The next save carries a later position; until then a restart delivers a little again.
      count("save");
      saveOutage.failed({ error, version });
    }
  }

  async function run(saveFirst: boolean, term: AbortSignal): Promise<void> {
    // Without a saved starting point, a restart before the first delivery would start again
    // from a later head and skip what was committed in between.
    if (saveFirst) await save();
    const readRetries = new Backoff({ initialMs: 200, maxMs: 10_000 });
    const { size, lingerMs } = options.batch ?? DEFAULT_BATCH;
    const behindRetention = options.behindRetention ?? "oldest";
    while (!term.aborted) {
      try {
        readingSince = Date.now();
        for await (const batch of batches(log, {
          after: delivered,
          stream: options.stream,
          size,
          lingerMs,
          collect,
          behindRetention,
          signal: term,
          hurry: context.hurry,
        })) {
          readingSince = undefined;
          readRetries.reset();
          health.worked();
          readOutage.succeeded();
          filterOutage.succeeded();
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
            await saveWithin(saveIntervalMs, term);
          } else {
            advance(batch.through);
            await saveWithin(Math.max(REFRESH_MS, saveIntervalMs), term);
          }
          showLag();
          readingSince = Date.now();
        }
      } catch (error) {
        readingSince = undefined;
        const delay = readRetries.next();
        health.struggle();
        const filtering = error instanceof FilterFailed;
        count(filtering ? "filter" : "read");
        const cause = filtering ? error.cause : error;
        (filtering ? filterOutage : readOutage).failed(
          { error: cause, after: delivered, retryInMs: delay },
          causeOf(cause),
        );
        await sleep(delay, term);
      }
    }
    clearTimeout(deferred?.timer);
    deferred = undefined;
    if (delivered > saved) await save();
  }

  /** Saves now if the last save is `intervalMs` old, else once it is; one that fails is tried again. */
  async function saveWithin(intervalMs: number, term: AbortSignal): Promise<void> {
    if (Date.now() - savedAt < intervalMs) return saveLater(savedAt + intervalMs, intervalMs, term);
    await save();
    // The store away: the position is saved a while on, not by the next batch's save, which may be hours away.
    if (delivered > saved && deferred === undefined && !term.aborted)
      saveLater(Date.now() + Math.max(intervalMs, REFRESH_MS), intervalMs, term);
  }

  async function deliveredAll(deadline: number, unlessFailing: boolean): Promise<boolean> {
    const target = log.head();
    const isFailing = () => failing || options.failing?.() === true;
    // Counted from the drain's start at the earliest: before it, a caught-up loop waited for the log's next update,
    // which holds no read of the store however long it waits.
    const began = Date.now();
    /** When the read under way, if any, counts as held. */
    const heldAt = () =>
      readingSince === undefined ? Number.POSITIVE_INFINITY : Math.max(readingSince, began) + DRAIN_READ_WAIT_MS;
    while (delivered < target) {
      if (Date.now() >= heldAt()) {
        // Said once per drain: the stop, or the NATS sink's wait for it, ends before what is committed is out.
        logger.warn(
          "sink's drain gave up a read of the store left unanswered; what it did not deliver goes out after the " +
            "next start, from the saved cursor: nothing is lost",
          { waitedMs: Date.now() - Math.max(readingSince ?? began, began), delivered, head: target },
        );
        return false;
      }
      if (unlessFailing && isFailing()) return false;
      const next = unlessFailing ? Promise.race([moved.promise, failed.promise]) : moved.promise;
      // Looked at again: a sink's own failing() tells no one when it turns (a refusal that arrives once the drain
      // began), nor does the loop when a read it began is held.
      const poll = Date.now() + (unlessFailing && options.failing ? FAILING_POLL_MS : DRAIN_READ_WAIT_MS);
      const wake = Math.min(deadline, poll, heldAt());
      if ((await until(next, wake)) === TIMED_OUT && Date.now() >= deadline) return false;
    }
    return true;
  }

  return {
    get delivered() {
      return delivered;
    },
    startAt(version) {
      delivered = saved = version;
    },
    run,
    deliveredAll,
  };
}
