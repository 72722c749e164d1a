/**
 * The `time` each update is stamped with as it is numbered: the wall clock's, but never below the previous update's,
 * so that times rise with versions however the clock moves. A clock stepped back (an NTP step, a VM restored, a clock
 * set by hand; while kubemeta runs, or while it was down: the newest stored update's time, `after`, is then ahead of
 * it) stamps each update with the last time given until it catches up. Consumers never see `time` go back, and
 * retention by age, which finds its cutoff by a binary search over times in version order (the libSQL store's prune),
 * stays right: times lower than earlier updates' made it prune updates kept for their age, or keep older ones.
 */
import type { Logger } from "../sdk/telemetry.ts";

/** A clock behind the last time given by more than this is said once (a step, not the jitter of a slewing clock). */
const SAY_BEHIND_MS = 1_000;

export interface UpdateTimeOptions {
  /** The wall clock, ms since the epoch: Date.now by default. */
  clock?: () => number;
  /** The newest stored update's time (ms since the epoch), if any: the first update is stamped no earlier. */
  after?: number;
  logger: Logger;
}

/** Stamps as ISO strings to the millisecond: one string per millisecond, not one per update. */
export function updateTimes(options: UpdateTimeOptions): () => string {
  const { clock = Date.now, logger } = options;
  let timeMs = options.after ?? 0;
  let timeText = new Date(timeMs).toISOString();
  /** Said once each time the clock falls behind, not once per update until it catches up. */
  let saidBehind = false;
  return () => {
    const ms = clock();
    if (ms > timeMs) {
      [timeMs, timeText, saidBehind] = [ms, new Date(ms).toISOString(), false];
    } else if (ms < timeMs - SAY_BEHIND_MS && !saidBehind) {
      saidBehind = true;
      logger.warn("the clock is behind the last update's time; updates take that time until the clock catches up", {
        updateTime: timeText,
        behindMs: timeMs - ms,
      });
    }
    return timeText;
  };
}
