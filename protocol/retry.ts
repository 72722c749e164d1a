/**
 * How every party retries, server and client alike: exponential backoff with full jitter
 * (AWS architecture blog's "full jitter"), and a server's `Retry-After` honoured.
 */
import { parseHttpDate } from "./http-date.ts";

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /**
   * `full` (default): a delay anywhere in [0, ceiling], to spread retries after a failure. `equal`: in
   * [ceiling / 2, ceiling], for polling that must keep a minimum interval (the same blog's "equal jitter").
   */
  jitter?: "full" | "equal";
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly floor: number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 200;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.floor = options.jitter === "equal" ? 0.5 : 0;
  }

  /** The next delay: random in [0, min(max, initial * factor^attempt)], or its upper half with equal jitter. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return Math.round(ceiling * (this.floor + Math.random() * (1 - this.floor)));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** A promise that resolves when the signal aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * The longest wait a timer takes: setTimeout's delay is a signed 32-bit count of milliseconds, and a longer one
 * fires at once (Bun warns on stderr each time), so a 30-day interval would run every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay setTimeout keeps: `ms` at most MAX_TIMER_MS, and not below 0. A config duration is at most MAX_TIMER_MS, but
 * a wait made of one (twice `connectTimeout`, a quarter past `watchTimeout`) may be longer, and would fire at once.
 */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(0, ms), MAX_TIMER_MS);
}

/** Resolves after `ms` (at most MAX_TIMER_MS), or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return firstAbort(signal ? [signal] : [], ms);
}

/**
 * Resolves when one of `signals` aborts (at once if one has), or after `ms` (at most MAX_TIMER_MS) when given. Once
 * it resolves it holds nothing: its timer is cleared and its listeners removed from every signal, so that waits
 * repeated on a signal that lives on (a connection's session) do not pile up listeners on it.
 */
export function firstAbort(signals: readonly AbortSignal[], ms = Infinity): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((signal) => signal.aborted)) return resolve();
    const timer = Number.isFinite(ms) ? setTimeout(done, timerDelay(ms)) : undefined;
    function done() {
      clearTimeout(timer);
      for (const signal of signals) signal.removeEventListener("abort", done);
      resolve();
    }
    for (const signal of signals) signal.addEventListener("abort", done, { once: true });
  });
}

export const TIMED_OUT = Symbol("timed out");

/**
 * Resolves with `work`, or with TIMED_OUT once `deadline` (epoch ms; Infinity for none) has passed or `cut`
 * aborts. Everything it waits on is its own and let go when it settles: a race against a promise that outlives it
 * (one pending until stop) would keep every result raced against it.
 */
export function until<T>(work: Promise<T>, deadline: number, cut?: AbortSignal): Promise<T | typeof TIMED_OUT> {
  const over = Promise.withResolvers<typeof TIMED_OUT>();
  const end = () => over.resolve(TIMED_OUT);
  const timer = Number.isFinite(deadline) ? setTimeout(end, timerDelay(deadline - Date.now())) : undefined;
  if (cut?.aborted) end();
  cut?.addEventListener("abort", end, { once: true });
  return Promise.race([work, over.promise]).finally(() => {
    clearTimeout(timer);
    cut?.removeEventListener("abort", end);
  });
}

/** Longest Retry-After (or SSE `retry:`) honoured, so that a server cannot park a client for days. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * Retry-After as delay-seconds or an HTTP date in any of its three forms (RFC 9110 §10.2.3), in ms, at most
 * MAX_RETRY_AFTER_MS; undefined when absent or unreadable. A date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : (parseHttpDate(text, now) ?? Number.NaN) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}
