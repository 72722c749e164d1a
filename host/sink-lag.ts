/**
 * `kubemeta_sink_lag_versions` of a sink from the host's start, until the sink keeps it itself: a sink that cannot
 * start (a create that refuses its config, a start that fails or hangs) falls behind by all that is committed past
 * its cursor, and an alert on its lag must see that. A sink built on `consume` takes the series over as it starts;
 * one that keeps none (the sse sink: each subscriber has its own position) has none once it has started.
 */
import { REFRESH_MS } from "../sdk/consume-delivery.ts";
import { sinkLag, type Gauge, type Labels, type Metrics } from "../sdk/telemetry.ts";

export interface LagOptions {
  sink: string;
  metrics: Metrics;
  head: () => number;
  /** The cursor the store holds for the sink; undefined when it has none yet (all it has not delivered). */
  cursor: () => Promise<number | undefined>;
  /** Whether this replica delivers (with `ha`, while it leads): one that does not has no lag. */
  delivers: () => boolean;
}

export interface LagUntilStarted {
  /** The registry for the sink's context: what the sink sets of its own lag series makes the series the sink's. */
  metrics: Metrics;
  /** The sink has started: its series is its own, or, if it set none, it has none. */
  started(): void;
  /** The host stops: the series is left as it is. */
  stop(): void;
}

export function lagUntilStarted(options: LagOptions): LagUntilStarted {
  const { sink, metrics } = options;
  const labels = { sink };
  const lag = sinkLag(metrics);
  let cursor: number | undefined;
  let read: "no" | "reading" | "done" = "no";
  let owned = false;
  let timer: Timer | undefined;

  const show = () => {
    if (timer === undefined) return;
    lag.set(options.delivers() ? Math.max(0, options.head() - (cursor ?? 0)) : 0, labels);
  };
  const refresh = () => {
    // Read once (the cursor of a sink that has not started does not move); a failed read is tried at the next refresh.
    if (read === "no") {
      read = "reading";
      options.cursor().then(
        (held) => {
          cursor = held;
          read = "done";
          show();
        },
        () => {
          read = "no";
        },
      );
    }
    show();
  };
  const stop = () => {
    clearInterval(timer);
    timer = undefined;
  };
  const claim = (labelled?: Labels) => {
    if (labelled?.sink !== sink) return;
    owned = true;
    stop();
  };
  timer = setInterval(refresh, REFRESH_MS);
  timer.unref();
  refresh();

  const own = (gauge: Gauge): Gauge => ({
    ...gauge,
    set: (value, labelled) => {
      claim(labelled);
      gauge.set(value, labelled);
    },
    inc: (labelled, by) => {
      claim(labelled);
      gauge.inc(labelled, by);
    },
    dec: (labelled, by) => {
      claim(labelled);
      gauge.dec(labelled, by);
    },
    remove: (labelled) => {
      claim(labelled);
      gauge.remove(labelled);
    },
  });
  return {
    metrics: {
      ...metrics,
      gauge: (name, help) => {
        const gauge = metrics.gauge(name, help);
        return gauge === lag ? own(gauge) : gauge;
      },
    },
    started() {
      stop();
      if (!owned) lag.remove(labels);
    },
    stop,
  };
}
