/**
 * Checks of the options that are durations. A timer waits at most MAX_TIMER_MS (24.8 days): `setTimeout` takes a
 * longer delay as 1 ms, so a large timeout would fire at once, over and over (a replay asked, a connection cut, every
 * millisecond), and is refused instead, as is one that is not a number of milliseconds.
 */
import { MAX_TIMER_MS } from "../protocol/retry.ts";

/**
 * Throws a RangeError unless `value` (the option `name`, when given) is milliseconds from 1 to MAX_TIMER_MS; or 0,
 * when `zeroMeans` says what 0 does.
 */
export function checkMs(name: string, value: number | undefined, zeroMeans?: string): void {
  if (value === undefined) return;
  const least = zeroMeans === undefined ? 1 : 0;
  if (typeof value === "number" && value >= least && value <= MAX_TIMER_MS) return;
  const zero = zeroMeans === undefined ? "" : ` (0 ${zeroMeans})`;
  throw new RangeError(`${name}: ${value} is not a number of milliseconds from ${least} to ${MAX_TIMER_MS}${zero}`);
}

export interface BackoffMs {
  initialMs: number;
  maxMs: number;
}

/**
 * The same for a backoff's `initialMs` and `maxMs` under `name`, each given or its default, the first not above the
 * second (an `initialMs` above the default `maxMs` too): the backoff to use.
 */
export function checkBackoff(name: string, backoff: Partial<BackoffMs> | undefined, defaults: BackoffMs): BackoffMs {
  checkMs(`${name}.initialMs`, backoff?.initialMs);
  checkMs(`${name}.maxMs`, backoff?.maxMs);
  const { initialMs = defaults.initialMs, maxMs = defaults.maxMs } = backoff ?? {};
  if (initialMs > maxMs) {
    const max = backoff?.maxMs === undefined ? `the default maxMs ${maxMs}` : `maxMs ${maxMs}`;
    throw new RangeError(`${name}: initialMs ${initialMs} is above ${max}`);
  }
  return { initialMs, maxMs };
}
