/** Contexts and readings for the sink tests (tests/plugins-consume*.test.ts, tests/plugins.test.ts). */
import { afterEach, expect } from "bun:test";
import type { Sink, SinkContext } from "../sdk/contract.ts";
import { consume, type ConsumeOptions } from "../sdk/consume.ts";
import { createLogger } from "../host/logger.ts";
import type { LogFields } from "../sdk/telemetry.ts";
import { rawPod, type TestHost } from "../testing/index.ts";

export interface Logged extends LogFields {
  level: string;
  msg: string;
}

/** A sink context on a real host, with a logger the test reads and a cursor kept in memory. */
export function contextOn(
  th: TestHost,
  name: string,
  logged: Logged[] = [],
): SinkContext & { saved(): number | undefined } {
  let cursor: number | undefined;
  return {
    name,
    cluster: "test",
    logger: createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) }),
    metrics: th.host.metrics,
    log: th.host.log,
    http: th.host.http.app,
    cursor: {
      load: async () => cursor,
      save: async (version) => {
        cursor = version;
      },
    },
    saved: () => cursor,
  };
}

/** A counter or gauge of the host's registry, for one sink (0 when it has no such series). */
export function sinkMetric(
  th: TestHost,
  type: "counter" | "gauge",
  metric: string,
  sink: string,
  labels: Record<string, string> = {},
): number {
  return th.host.metrics[type](metric, "").get({ sink, ...labels });
}

export function addPods(th: TestHost, count: number, from = 0): void {
  for (let i = from; i < from + count; i++) th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
}

/** An age in seconds a gauge refreshed each second shows (a lag, the oldest update's): at most that far behind now. */
export function expectAge(shown: number, since: number): void {
  const now = (Date.now() - since) / 1000;
  expect(shown).toBeLessThanOrEqual(now);
  // Refreshed each second; a loaded machine runs the refresh late by as much again.
  expect(shown).toBeGreaterThan(now - 2.5);
}

/** Versions 1..n. */
export const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/**
 * A test file's `consume` sinks: `start` one on a host (fast retries unless the options say otherwise); after each
 * test every one still running is stopped, then `destroy` clears the file's host.
 */
export function consumeSinks(destroy: () => Promise<void>) {
  const running: Sink[] = [];
  afterEach(async () => {
    for (const sink of running.splice(0)) await sink.stop();
    await destroy();
  });
  return {
    running,
    async start(host: TestHost, name: string, options: ConsumeOptions, logged: Logged[] = []) {
      const ctx = contextOn(host, name, logged);
      const sink = consume(ctx, { retry: { initialMs: 5, maxMs: 20 }, ...options });
      running.push(sink);
      await sink.start();
      return { sink, ctx };
    },
  };
}
