/** Contexts and readings for the sink tests (tests/plugins-consume.test.ts, tests/plugins.test.ts). */
import type { SinkContext } from "../sdk/contract.ts";
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

/** Versions 1..n. */
export const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
