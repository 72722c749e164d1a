/**
 * `kubemeta_sink_lag_seconds{sink}` of a sink built on `consume` (sdk/consume.ts): how long ago the first version it
 * has not passed was committed, beside `kubemeta_sink_lag_versions`. Retention by age (`store.retention.maxAge`)
 * removes updates by that clock: a sink whose lag nears maxAge is about to lose what it has not delivered.
 *
 * Off the delivery's path: the update is remembered as the sink reads it (`read`), and only a position that was not
 * read yet (a sink just started, its reads failing) is looked up, by the lag's refresh, once per position.
 */
import { ALL } from "../protocol/streams.ts";
import type { CommittedLog } from "./contract.ts";
import type { Update } from "./model.ts";
import { type Labels, type Metrics, sinkLagSeconds } from "./telemetry.ts";

/** Seconds since `committedAt` (ms since the epoch), never below 0 (a clock stepped back). */
export const secondsSince = (committedAt: number): number => Math.max(0, (Date.now() - committedAt) / 1000);

/**
 * `look` run one at a time: a call while one is under way is dropped, and a failure (the store away) ignored, for
 * the caller's next refresh to ask again. The lag gauges look up one update's time so, off any delivery's path.
 */
export function oneAtATime<A>(look: (arg: A) => Promise<void>): (arg: A) => void {
  let busy = false;
  return (arg) => {
    if (busy) return;
    busy = true;
    look(arg)
      .catch(() => {})
      .finally(() => {
        busy = false;
      });
  };
}

export interface LagClock {
  /** An update the sink read: the first after its position is the oldest it has not passed. */
  read(update: Update, position: number): void;
  /**
   * Shows the lag of a sink at `position` that is `behind` versions behind (0: caught up); `look`: if that version's
   * time is not known, read it (the lag's refresh, never a delivery).
   */
  show(position: number, behind: number, look: boolean): void;
}

export function lagClock(metrics: Metrics, log: CommittedLog, labels: Labels): LagClock {
  const gauge = sinkLagSeconds(metrics);
  /** When the first version past a position was committed (or, pruned, no later than when the oldest kept was). */
  let known: { version: number; committedAt: number } | undefined;

  function remember(version: number, time: string): void {
    const committedAt = Date.parse(time);
    if (!Number.isNaN(committedAt)) known = { version, committedAt };
  }

  /**
   * The first update past `position`, or, retention past it, the oldest kept, which is younger (the sink's own read
   * says it fell behind). A failure leaves the gauge as it was.
   */
  const lookUp = oneAtATime(async (position: number) => {
    const after = Math.max(position, log.oldest() - 1);
    // No reader's position: a prune that overtakes it is the sink's own read's to count.
    const [update] = await log.read({ stream: ALL, after, to: after + 1, limit: 1, noPosition: true });
    if (update) remember(position + 1, update.time);
  });

  // No series until the sink first shows its lag: until then the host keeps it (host/sink-lag.ts), through the start.
  return {
    read(update, position) {
      if (update.version === position + 1) remember(update.version, update.time);
    },
    show(position, behind, look) {
      if (behind === 0) return gauge.set(0, labels);
      if (known?.version === position + 1) gauge.set(secondsSince(known.committedAt), labels);
      else if (look) lookUp(position);
    },
  };
}
