/**
 * One batch of a `consume` sink's delivery loop (consume-delivery.ts) handed to its `deliver` until it resolves: the
 * same batch retried with backoff, a batch held past `stallAfterMs` reported, none sent while this replica cannot be
 * sure it still leads.
 */
import * as v from "valibot";
import type { Envelope } from "../protocol/envelope.ts";
import { Backoff, sleep, TIMED_OUT, timerDelay, until } from "../protocol/retry.ts";
import { retrySchema } from "./schema.ts";
import type { ConsumeOptions, RetrySettings } from "./consume-options.ts";
import type { DeliveryContext } from "./consume-delivery.ts";
import { causeOf, outageLog } from "./telemetry.ts";

/** The defaults of a sink whose schema leaves the keys out: one source of truth, the schemas. */
const DEFAULT_RETRY: RetrySettings = v.parse(retrySchema(), undefined);

/** How often a delivery held back while leadership is unsure (Leadership.holds) looks again. */
const HOLDS_POLL_MS = 50;

/** What a drain learns of the deliveries: one failed or stalled (it would wait in vain), one worked. */
export interface DeliveryHealth {
  struggle(): void;
  worked(): void;
}

/** The loop's `deliverBatch`: one for its life, as its outage log spans the batches. */
export function batchDelivery(options: ConsumeOptions, context: DeliveryContext, health: DeliveryHealth) {
  const { ctx, labels, stalled, count } = context;
  const { logger } = ctx;
  const stallAfterMs = options.stallAfterMs ?? 60_000;
  // A plugin's "never" (Infinity, or days) past a timer's range would fire at once: every batch a stall.
  const stallTimerMs = timerDelay(stallAfterMs);
  // A batch sent again for as long as the sink's receiver is away (a plugin's own, down for an hour): each outage's
  // first failure, and each new cause, said at once.
  const deliverOutage = outageLog(logger, "sink failed to deliver a batch; retrying it", "sink delivery works again");

  /**
   * Waits while this replica cannot be sure it still leads (a pause past its Lease: its term's signal aborts only once
   * the Lease's timers have run); true once it is sure again, false once the term is over.
   */
  async function stillLeading(term: AbortSignal): Promise<boolean> {
    const holds = () => ctx.leadership?.holds?.() ?? true;
    while (!term.aborted && !holds()) await sleep(HOLDS_POLL_MS, term);
    return !term.aborted;
  }

  /** A plugin's transient() that throws must not end the delivery loop: such a failure is an error. */
  const levelOf = (error: unknown) => {
    try {
      return options.transient?.(error) ? "warn" : "error";
    } catch {
      return "error";
    }
  };

  /** Delivers one batch, retrying until it works; false when the sink stopped (or lost leadership) first. */
  async function deliverBatch(envelopes: Envelope[], term: AbortSignal): Promise<boolean> {
    const first = envelopes[0]!.version;
    const last = envelopes[envelopes.length - 1]!.version;
    const backoff = new Backoff(options.retry ?? DEFAULT_RETRY);
    const stallTimer = setTimeout(() => {
      stalled.set(1, labels);
      health.struggle();
      logger.warn("sink has held one batch too long; it delays only itself", { first, last, heldMs: stallAfterMs });
    }, stallTimerMs);
    try {
      for (let attempt = 1; !term.aborted; attempt++) {
        // Another replica may be delivering later versions already: a batch of this one's would come out of order.
        if (!(await stillLeading(term))) return false;
        try {
          // Called in a promise, so that a synchronous throw is a failure like any other.
          const delivering = (async () => options.deliver(envelopes, term))();
          // A deliver that ignores the signal is left behind when stop gives up on it.
          delivering.catch(() => {});
          if ((await until(delivering, Infinity, context.givenUp)) === TIMED_OUT) {
            // Else the stop's stopWaitMs is a silence in the log, and the batch's fate unsaid.
            logger.warn(
              "sink gave up on its batch in delivery to stop; the batch is delivered again at the next start",
              { first, last },
            );
            return false;
          }
          deliverOutage.succeeded();
          health.worked();
          return true;
        } catch (error) {
          if (term.aborted) return false;
          health.struggle();
          const delay = backoff.next();
          count("deliver");
          deliverOutage.failed({ error, first, last, attempt, retryInMs: delay }, causeOf(error), levelOf(error));
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

  return deliverBatch;
}
