/**
 * A minimal Prometheus registry (text exposition format 0.0.4). Registering the same
 * name twice returns the same metric, so plugins can register on every start; as
 * another type, or under a name or label name the format does not allow (or Prometheus: `__x`, a histogram's `le`),
 * it throws: one plugin's mistake must not make every scrape of /metrics fail.
 *
 * Label values can come from outside (kinds from the API server, custom resources
 * included): each label of a family keeps its first MAX_LABEL_VALUES values, and counts
 * any later one as `other`, so that no input grows /metrics without bound.
 */
import type { Counter, Gauge, Histogram, Labels, Metrics } from "../sdk/telemetry.ts";

interface Family {
  type: "counter" | "gauge" | "histogram";
  help: string;
  render(name: string): string[];
}

const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Distinct values one label of one family keeps (well above the built-in kinds plus a config's custom ones). */
export const MAX_LABEL_VALUES = 100;
export const OTHER_LABEL_VALUE = "other";

/**
 * The series keys of one family. `admit` takes a label value while the label has room; a lookup (`admit: false`)
 * of a value never admitted finds the `other` series, where that value was counted.
 */
function labelKeys(family: "value" | "histogram" = "value") {
  const admitted = new Map<string, Set<string>>();
  const bounded = (name: string, value: string, admit: boolean): string => {
    let values = admitted.get(name);
    if (!values) {
      checkLabelName(name, family);
      values = new Set<string>();
      admitted.set(name, values);
    }
    if (admit && values.size < MAX_LABEL_VALUES) values.add(value);
    return values.has(value) ? value : OTHER_LABEL_VALUE;
  };
  return {
    // Runs for every increment on hot paths (a NATS message, a watch event): a loop, not sort/map/join, for the one
    // or two labels most have.
    key(labels: Labels | undefined, admit = true): string {
      if (!labels) return "";
      const names = Object.keys(labels);
      if (names.length > 1) names.sort();
      let key = "";
      for (const name of names) {
        const pair = `${name}="${escapeLabel(bounded(name, labels[name] ?? "", admit))}"`;
        key = key === "" ? pair : `${key},${pair}`;
      }
      return key;
    },
    /** False when some value was never admitted: its series is `other`, shared with other values. */
    isOwn(labels: Labels): boolean {
      return Object.entries(labels).every(([name, value]) => admitted.get(name)?.has(value));
    },
  };
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Prometheus refuses a sample with a label twice, and keeps names starting with `__` for itself. */
function checkLabelName(name: string, family: "value" | "histogram"): void {
  const quoted = `metric label name ${JSON.stringify(name)}`;
  if (!LABEL_NAME.test(name)) throw new RangeError(`${quoted} is not one`);
  if (name.startsWith("__")) throw new RangeError(`${quoted} is not one: names starting with __ are Prometheus's own`);
  if (name === "le" && family === "histogram")
    throw new RangeError(`${quoted} is not one of a histogram: its buckets' label`);
}

/** Counters are incremented per event on hot paths: most values need no escaping; a test costs less than 3 replaces. */
const NEEDS_ESCAPE = /[\\\n"]/;

/** A help text as the format carries it: backslashes and newlines escaped (quotes are allowed). */
function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function escapeLabel(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** A sample value as the format spells it: `+Inf`, `-Inf` and `NaN`, not JavaScript's `Infinity`. */
function sample(value: number): string {
  if (Number.isFinite(value) || Number.isNaN(value)) return String(value);
  return value > 0 ? "+Inf" : "-Inf";
}

function series(name: string, key: string, value: number): string {
  return `${name}${key ? `{${key}}` : ""} ${sample(value)}`;
}

function valueFamily(type: "counter" | "gauge", help: string) {
  const values = new Map<string, number>();
  const keys = labelKeys();
  const add = (labels: Labels | undefined, by: number) => {
    const key = keys.key(labels);
    values.set(key, (values.get(key) ?? 0) + by);
  };
  const family: Family & Counter & Gauge = {
    type,
    help,
    render: (name) => [...values].map(([key, value]) => series(name, key, value)),
    inc: (labels, by = 1) => {
      if (type === "counter" && !(by >= 0)) throw new RangeError(`a counter only goes up (by ${by})`);
      add(labels, by);
    },
    dec: (labels, by = 1) => add(labels, -by),
    set: (value, labels) => void values.set(keys.key(labels), value),
    get: (labels) => values.get(keys.key(labels, false)) ?? 0,
    remove: (labels) => {
      if (keys.isOwn(labels)) values.delete(keys.key(labels, false));
    },
  };
  return family;
}

function histogramFamily(help: string, given: number[]) {
  if (!given.every(Number.isFinite)) throw new RangeError(`histogram buckets must be finite numbers: ${given}`);
  // The format wants them ascending, each once; +Inf is always added.
  const buckets = [...new Set(given)].sort((a, b) => a - b);
  const states = new Map<string, { counts: number[]; sum: number; count: number }>();
  const keys = labelKeys("histogram");
  const family: Family & Histogram = {
    type: "histogram",
    help,
    observe(value, labels) {
      const key = keys.key(labels);
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
  function register<F extends Family>(name: string, type: Family["type"], make: () => F): F {
    const existing = families.get(name);
    if (existing?.type === type) return existing as F;
    if (existing) throw new TypeError(`metric ${name} is a ${existing.type}, not a ${type}`);
    if (!METRIC_NAME.test(name)) throw new RangeError(`metric name ${JSON.stringify(name)} is not one`);
    const family = make();
    families.set(name, family);
    return family;
  }
  return {
    counter: (name, help) => register(name, "counter", () => valueFamily("counter", escapeHelp(help))),
    gauge: (name, help) => register(name, "gauge", () => valueFamily("gauge", escapeHelp(help))),
    histogram: (name, help, buckets = DEFAULT_BUCKETS) =>
      register(name, "histogram", () => histogramFamily(escapeHelp(help), buckets)),
    render() {
      const out: string[] = [];
      for (const [name, family] of families) {
        out.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.render(name));
      }
      return `${out.join("\n")}\n`;
    },
  };
}
