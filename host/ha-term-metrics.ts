/**
 * The `ha` terms' metrics (replication.ts): who leads, the terms begun and ended, and the fences a replica met while
 * it held the Lease, each series at 0 from the start.
 */
import type { Metrics } from "../sdk/telemetry.ts";

export type TermEndReason = "lease lost" | "fenced" | "store not writable";

export function haTermMetrics(metrics: Metrics) {
  const leading = metrics.gauge("kubemeta_ha_leader", "1 while this replica leads (holds the Lease and writes).");
  const begun = metrics.counter("kubemeta_ha_terms_total", "Terms this replica began as the leader.");
  const ended = metrics.counter(
    "kubemeta_ha_terms_ended_total",
    "Terms this replica ended as the leader without being stopped, by reason: lease_lost, fenced, store_not_writable.",
  );
  const fencedHoldingLease = metrics.counter(
    "kubemeta_ha_fenced_holding_lease_total",
    "Terms of this replica fenced out of the store while it held the Lease: by a writer without this Lease " +
      "(another ha.lease, a kubemeta without ha), a replica with this one's ha.identity, or (a store plugin that " +
      "ignores lead()'s check) a deposed leader's late ask for the writer's term.",
  );
  /** The log's reason as a label's value, in the words of the other labels' values. */
  const countEnd = (reason: TermEndReason, by?: number) => ended.inc({ reason: reason.replaceAll(" ", "_") }, by);
  leading.set(0);
  begun.inc(undefined, 0);
  fencedHoldingLease.inc(undefined, 0);
  for (const reason of ["lease lost", "fenced", "store not writable"] as const) countEnd(reason, 0);
  return { leading, begun, countEnd, fencedHoldingLease };
}
