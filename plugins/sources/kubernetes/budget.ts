/**
 * The client-side request budget: a token bucket shared by all requests of one source,
 * so that a crash loop (every reflector failing and retrying at once) can never send
 * the API server more than `qps` requests per second after the first `burst`.
 */
import { sleep } from "../../../protocol/retry.ts";

export interface RequestBudget {
  /** Resolves when the caller may send one request (or early, when the signal aborts). */
  take(signal: AbortSignal): Promise<void>;
}

export function createRequestBudget(
  qps: number,
  burst: number,
  now: () => number = performance.now.bind(performance),
): RequestBudget {
  let tokens = burst;
  let refilledAt = now();
  return {
    async take(signal) {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - refilledAt) / 1000) * qps);
      refilledAt = t;
      // Going below zero reserves a future token, so waiters are served in arrival order.
      tokens -= 1;
      if (tokens < 0) await sleep((-tokens / qps) * 1000, signal);
    },
  };
}
