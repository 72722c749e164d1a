/** The source's Prometheus series. */
import { changesRejected, type Counter, type Metrics } from "../../../sdk/telemetry.ts";
import { EVENT_TYPES } from "./events.ts";

export interface SourceMetrics {
  /**
   * `{verb, resource, code}`: code is the HTTP status, `error` when no response came, or `credentials` when the
   * request never left, its credentials not obtained (an exec plugin that failed).
   */
  requests: Counter;
  /**
   * `{resource, reason}`: why a watch was re-opened (`end`, `overdue`: kept open past its timeout and ended here,
   * `expired`, `too-large`, `throttled`, `inactivity`, `oversized`: a watch line or LIST page past its bound, `error`,
   * `gone`: answered 404).
   */
  watchRestarts: Counter;
  /** `{resource, type}`: watch and list events received. */
  events: Counter;
  /** `{resource}`: relists started (initial state, 410 Gone, expired continue token). */
  relists: Counter;
  /** `{reason}`: the core's skipped changes, and here `unknown_event_type` (watch events of no type known). */
  rejected: Counter;
}

export function sourceMetrics(metrics: Metrics): SourceMetrics {
  return {
    requests: metrics.counter(
      "kubemeta_source_requests_total",
      "Requests to the Kubernetes API server, by verb, resource and code: the HTTP status, error (no answer) or " +
        "credentials (none could be obtained).",
    ),
    watchRestarts: metrics.counter(
      "kubemeta_source_watch_restarts_total",
      "Watches re-opened, by resource and reason.",
    ),
    events: metrics.counter(
      "kubemeta_source_events_total",
      "Events received from the Kubernetes API server, by resource and type.",
    ),
    relists: metrics.counter("kubemeta_source_relists_total", "Relists started, by resource."),
    rejected: changesRejected(metrics),
  };
}

/**
 * A watched resource's events at 0 from the start: a resource the API server refuses from the first request (a 401, a
 * 403) would have no series, and `increase()` of none is nothing, not the 0 a staleness alert looks for.
 */
export function countEventsFromZero(metrics: SourceMetrics, resource: string): void {
  for (const type of EVENT_TYPES) metrics.events.inc({ resource, type }, 0);
}
