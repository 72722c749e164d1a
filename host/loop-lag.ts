/**
 * `kubemeta_event_loop_lag_seconds`: how late a 10 ms timer fires, i.e. how long the event loop could not run (a
 * long synchronous task, a garbage collection, or the machine's other threads keeping it off a core). Every request
 * (probes, SSE, /metrics) waits that long; bench/sync.ts reads it to tell kubemeta's own stalls from the machine's.
 */
import type { Metrics } from "../sdk/telemetry.ts";

const INTERVAL_MS = 10;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function watchEventLoop(metrics: Metrics): { stop(): void } {
  const lag = metrics.histogram(
    "kubemeta_event_loop_lag_seconds",
    "How late a 10 ms timer fired: time the event loop could not run.",
    BUCKETS,
  );
  let due = performance.now() + INTERVAL_MS;
  const timer = setInterval(() => {
    const now = performance.now();
    lag.observe(Math.max(0, now - due) / 1000);
    due = now + INTERVAL_MS;
  }, INTERVAL_MS);
  // It measures the process; it must not keep it alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
