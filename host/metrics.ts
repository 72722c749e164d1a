/**
 * A minimal Prometheus registry (text exposition format 0.0.4). Registering the same
 * name twice returns the same metric, so plugins can register on every start.
 */
import type { Counter, Gauge, Histogram, Labels, Metrics } from "../sdk/telemetry.ts";

interface Family {
  type: "counter" | "gauge" | "histogram";
  help: string;
  render(name: string): string[];
}

const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k] ?? "")}"`).join(",");
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function series(name: string, key: string, value: number): string {
  return `${name}${key ? `{${key}}` : ""} ${value}`;
}

function valueFamily(type: "counter" | "gauge", help: string) {
  const values = new Map<string, number>();
  const add = (labels: Labels | undefined, by: number) => {
    const key = labelKey(labels);
    values.set(key, (values.get(key) ?? 0) + by);
  };
  const family: Family & Counter & Gauge = {
    type,
    help,
    render: (name) => [...values].map(([key, value]) => series(name, key, value)),
    inc: (labels, by = 1) => add(labels, by),
    dec: (labels, by = 1) => add(labels, -by),
    set: (value, labels) => void values.set(labelKey(labels), value),
    get: (labels) => values.get(labelKey(labels)) ?? 0,
    remove: (labels) => void values.delete(labelKey(labels)),
  };
  return family;
}

function histogramFamily(help: string, buckets: number[]) {
  const states = new Map<string, { counts: number[]; sum: number; count: number }>();
  const family: Family & Histogram = {
    type: "histogram",
    help,
    observe(value, labels) {
      const key = labelKey(labels);
      let state = states.get(key);
      if (!state) {
        state = { counts: buckets.map(() => 0), sum: 0, count: 0 };
        states.set(key, state);
      }
      buckets.forEach((bound, i) => {
        if (value <= bound) state.counts[i]!++;
      });
      state.sum += value;
      state.count++;
    },
    render(name) {
      const lines: string[] = [];
      for (const [key, state] of states) {
        const sep = key ? `${key},` : "";
        buckets.forEach((bound, i) => {
          lines.push(`${name}_bucket{${sep}le="${bound}"} ${state.counts[i]}`);
        });
        lines.push(`${name}_bucket{${sep}le="+Inf"} ${state.count}`);
        lines.push(series(`${name}_sum`, key, state.sum));
        lines.push(series(`${name}_count`, key, state.count));
      }
      return lines;
    },
  };
  return family;
}

export function createMetrics(): Metrics {
  const families = new Map<string, Family>();
  function register<F extends Family>(name: string, make: () => F): F {
    const existing = families.get(name);
    if (existing) return existing as F;
    const family = make();
    families.set(name, family);
    return family;
  }
  return {
    counter: (name, help) => register(name, () => valueFamily("counter", help)),
    gauge: (name, help) => register(name, () => valueFamily("gauge", help)),
    histogram: (name, help, buckets = DEFAULT_BUCKETS) => register(name, () => histogramFamily(help, buckets)),
    render() {
      const out: string[] = [];
      for (const [name, family] of families) {
        out.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.render(name));
      }
      return `${out.join("\n")}\n`;
    },
  };
}
