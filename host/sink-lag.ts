/**
 * `kubemeta_sink_lag_versions` and `kubemeta_sink_lag_seconds` of a sink from the host's start, until the sink keeps
 * them itself: a sink that cannot start (a create that refuses its config, a start that fails or hangs) falls behind
 * by all that is committed past its cursor, and an alert on its lag must see that. A sink built on `consume` takes each
 * series over as it first sets it, the host's kept until then (its lag in seconds is known a refresh or two after its
 * start: an alert on an absent series must not fire meanwhile); one that keeps none (the sse sink: each subscriber has
 * its own position) has none once it has started.
 */
import { REFRESH_MS } from "../sdk/consume-delivery.ts";
import { oneAtATime, secondsSince } from "../sdk/consume-lag.ts";
import { sinkLag, sinkLagSeconds, type Gauge, type Labels, type Metrics } from "../sdk/telemetry.ts";

export interface LagOptions {
  sink: string;
  metrics: Metrics;
  head: () => number;
  /** The cursor the store holds for the sink; undefined when it has none yet (all it has not delivered). */
  cursor: () => Promise<number | undefined>;
  /** Whether this replica delivers (with `ha`, while it leads): one that does not has no lag. */
  delivers: () => boolean;
  /**
   * When the first update the log keeps after `version` was committed (ms; undefined with none): the first the sink
   * has not delivered, or, retention past it, the oldest kept, younger than it.
   */
  committedAfter: (version: number) => Promise<number | undefined>;
}

export interface LagUntilStarted {
  /** The registry for the sink's context: what the sink sets of its own lag series makes the series the sink's. */
  metrics: Metrics;
  /**
   * The sink has started: a series it never asked for is gone; one it asked for is its own once it sets it, the host's
   * until then.
   */
  started(): void;
  /** The host stops: the series is left as it is. */
  stop(): void;
}

export function lagUntilStarted(options: LagOptions): LagUntilStarted {
  const { sink, metrics } = options;
  const labels = { sink };
  const lag = sinkLag(metrics);
  const seconds = sinkLagSeconds(metrics);
  let cursor: number | undefined;
  let read: "no" | "reading" | "done" = "no";
  /** The series the host still sets: each until the sink sets it, or, once started, one the sink never asked for. */
  const kept = new Set<Gauge>([lag, seconds]);
  /** The series the sink asked its registry for: it sets them (a sink on `consume`), if not yet. */
  const asked = new Set<Gauge>();
  let timer: Timer | undefined;
  /** When the first version past the cursor was committed: read with the cursor. */
  let committedAt: number | undefined;
  /** Whether this replica delivered at the last refresh, and which of its terms of delivering a cursor read is for. */
  let delivering = false;
  let term = 0;

  const lookUp = oneAtATime(async (after: number) => {
    const readFor = term;
    const at = await options.committedAfter(after);
    if (readFor === term) committedAt = at;
  });
  const show = () => {
    if (timer === undefined) return;
    const behind = options.delivers() ? Math.max(0, options.head() - (cursor ?? 0)) : 0;
    if (kept.has(lag)) lag.set(behind, labels);
    if (!kept.has(seconds)) return;
    if (behind === 0) seconds.set(0, labels);
    else if (committedAt !== undefined) seconds.set(secondsSince(committedAt), labels);
    else if (read === "done") lookUp(cursor ?? 0);
  };
  const refresh = () => {
    // The cursor of a sink that has not started here does not move while this replica delivers, so it is read once a
    // term; with `ha`, the leader before this one moved it meanwhile. A failed read is tried at the next refresh.
    const delivers = options.delivers();
    if (delivers && !delivering) {
      term++;
      read = "no";
      committedAt = undefined;
    }
    delivering = delivers;
    if (read === "no") {
      read = "reading";
      const readFor = term;
      options.cursor().then(
        (held) => {
          if (readFor !== term) return;
          cursor = held;
          read = "done";
          show();
        },
        () => {
          if (readFor === term) read = "no";
        },
      );
    }
    show();
  };
  const stop = () => {
    clearInterval(timer);
    timer = undefined;
  };
  const leave = (gauge: Gauge) => {
    kept.delete(gauge);
    if (kept.size === 0) stop();
  };
  const claim = (gauge: Gauge, labelled?: Labels) => {
    if (labelled?.sink === sink && kept.has(gauge)) leave(gauge);
  };
  timer = setInterval(refresh, REFRESH_MS);
  timer.unref();
  refresh();

  const own = (gauge: Gauge): Gauge => ({
    ...gauge,
    set: (value, labelled) => {
      claim(gauge, labelled);
      gauge.set(value, labelled);
    },
    inc: (labelled, by) => {
      claim(gauge, labelled);
      gauge.inc(labelled, by);
    },
    dec: (labelled, by) => {
      claim(gauge, labelled);
      gauge.dec(labelled, by);
    },
    remove: (labelled) => {
      claim(gauge, labelled);
      gauge.remove(labelled);
    },
  });
  return {
    metrics: {
      ...metrics,
      gauge: (name, help) => {
        const gauge = metrics.gauge(name, help);
        if (gauge !== lag && gauge !== seconds) return gauge;
        asked.add(gauge);
        return own(gauge);
      },
    },
    started() {
      for (const gauge of [...kept])
        if (!asked.has(gauge)) {
          leave(gauge);
          gauge.remove(labels);
        }
    },
    stop,
  };
}
