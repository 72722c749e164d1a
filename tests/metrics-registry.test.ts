/**
 * The registry behind /metrics is shared with custom plugins (ctx.metrics): what a plugin registers must keep the
 * exposition valid for every scrape, or say at once why it cannot.
 */
import { expect, test } from "bun:test";
import { createMetrics } from "../host/metrics.ts";

/** Each line a comment or `name{labels} value`, as Prometheus' text format 0.0.4 reads it. */
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
const SAMPLE_LINE = new RegExp(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{${LABEL}(,${LABEL})*\\})? (-?[0-9.e+-]+|[+-]Inf|NaN)$`);

function expectValidExposition(text: string): void {
  for (const line of text.trimEnd().split("\n")) if (!line.startsWith("# ")) expect(line).toMatch(SAMPLE_LINE);
}

test("help text with a newline or a backslash is escaped; infinite values are +Inf/-Inf; buckets ascend", () => {
  const metrics = createMetrics();
  metrics.counter("plugin_events_total", "events\nby kind \\ source").inc({ kind: "a" });
  metrics.gauge("plugin_limit", "a limit").set(Number.POSITIVE_INFINITY);
  metrics.gauge("plugin_floor", "a floor").set(Number.NEGATIVE_INFINITY);
  metrics.histogram("plugin_seconds", "a duration", [1, 0.1, 1]).observe(0.05);
  const text = metrics.render();
  expectValidExposition(text);
  expect(text).toContain("# HELP plugin_events_total events\\nby kind \\\\ source\n");
  expect(text).toContain("plugin_limit +Inf\n");
  expect(text).toContain("plugin_floor -Inf\n");
  expect(text.split("\n").filter((line) => line.startsWith("plugin_seconds_bucket"))).toEqual([
    'plugin_seconds_bucket{le="0.1"} 1',
    'plugin_seconds_bucket{le="1"} 1',
    'plugin_seconds_bucket{le="+Inf"} 1',
  ]);
});

test("what the format cannot carry is refused when it is registered or first used, not written", () => {
  const metrics = createMetrics();
  const stalled = metrics.gauge("kubemeta_sink_stalled", "built in");
  // The same name and type is the same metric (plugins register on every start); another type is a mistake.
  expect(metrics.gauge("kubemeta_sink_stalled", "again")).toBe(stalled);
  expect(() => metrics.counter("kubemeta_sink_stalled", "clash")).toThrow(
    "metric kubemeta_sink_stalled is a gauge, not a counter",
  );
  expect(() => metrics.counter("plugin-events", "a dash")).toThrow(RangeError);
  expect(() => metrics.histogram("plugin_h", "h", [0.1, Number.POSITIVE_INFINITY])).toThrow(RangeError);
  const events = metrics.counter("plugin_total", "events");
  expect(() => events.inc({ "bad-label": "x" })).toThrow(RangeError);
  expect(() => events.inc({}, -3)).toThrow("a counter only goes up");
  events.inc({ ok: "x" });
  expectValidExposition(metrics.render());
  expect(metrics.render()).toContain('plugin_total{ok="x"} 1\n');
  expect(metrics.render()).toContain("# TYPE kubemeta_sink_stalled gauge\n");
});
