/**
 * `kubemeta_store_oldest_update_age_seconds`: how old the oldest update the log keeps is, so that an operator sees
 * retention's reach in time (it nears `store.retention.maxAge` once retention prunes by age, and stays below it but on
 * a cluster quiet for longer, its oldest kept then the newest update, which retention keeps however old) and
 * sets it beside each sink's `kubemeta_sink_lag_seconds`: a sink whose lag reaches it is losing updates.
 *
 * Refreshed on a timer, not by commits: the oldest update is read from the store only when the log's oldest version
 * moved (a prune, a follower's poll), about once per retention run.
 *
 * Also here: the age each prune of a leader's term is given (ageRetention), which that age's reach depends on.
 */
import { REFRESH_MS } from "../sdk/consume-delivery.ts";
import { oneAtATime, secondsSince } from "../sdk/consume-lag.ts";
import type { CommittedLog, RetentionPolicy, Store } from "../sdk/contract.ts";
import { ALL } from "../protocol/streams.ts";
import type { Metrics } from "../sdk/telemetry.ts";

/** When the first update the store keeps after `version` was committed (ms since the epoch); undefined with none. */
export async function committedAfter(store: Store, version: number): Promise<number | undefined> {
  const [update] = await store.readUpdates({ stream: ALL, after: version, limit: 1 });
  const at = Date.parse(update?.time ?? "");
  return Number.isNaN(at) ? undefined : at;
}

export function watchLogAge(store: Store, log: CommittedLog, metrics: Metrics): { stop(): void } {
  const age = metrics.gauge(
    "kubemeta_store_oldest_update_age_seconds",
    "Seconds since the `time` of the oldest update the log keeps (0 with none).",
  );
  /** When the update at `version`, the log's oldest when it was read, was committed. */
  let known: { version: number; committedAt: number } | undefined;

  const show = () => {
    if (known) age.set(secondsSince(known.committedAt));
  };

  /**
   * The store may have pruned further than the log has heard: its oldest is younger, and read again once the log
   * hears. One that finds nothing is asked again by the next refresh.
   */
  const lookUp = oneAtATime(async (oldest: number) => {
    const committedAt = await committedAfter(store, oldest - 1);
    if (committedAt !== undefined) known = { version: oldest, committedAt };
    show();
  });

  const refresh = () => {
    const oldest = log.oldest();
    if (oldest > log.head()) return age.set(0);
    if (known?.version === oldest) return show();
    lookUp(oldest);
  };
  age.set(0);
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * The policy for each prune of a term, its age counted so that a wall clock that jumps ahead (a step of NTP's, a VM
 * resumed, a clock set by hand) prunes nothing more: counted from Date.now() alone, one jump past maxAge would prune
 * at once every update a reader still needs. The age's cutoff starts at the newest stored update's time less maxAge
 * (the clock's, if earlier) and moves no faster than this process's monotonic clock, a jump while kubemeta runs or
 * while it was down counted for nothing. The price: after a quiet spell before the term, or a downtime, updates are
 * kept that much past maxAge (maxUpdates still bounds them).
 */
export function ageRetention(
  store: Store,
  log: CommittedLog,
  policy: RetentionPolicy,
  /** The newest stored update's time as the term started (read then for its update times), not read again. */
  newestAtStart?: number,
): () => Promise<RetentionPolicy> {
  let start: { cutoff: number; at: number } | undefined;
  // Counted from the term's start, not its first run an interval later: the cutoff lagged that far for the whole term.
  const begun = { wall: Date.now(), at: performance.now() };
  return async () => {
    if (policy.maxAgeMs <= 0) return policy;
    if (!start) {
      const newest = newestAtStart ?? (log.head() > 0 ? await committedAfter(store, log.head() - 1) : undefined);
      // Nothing stored to count from: nothing to prune by age either, until there is.
      if (newest === undefined) return { ...policy, maxAgeMs: 0 };
      start = { cutoff: Math.min(newest, begun.wall) - policy.maxAgeMs, at: begun.at };
    }
    const now = Date.now();
    const cutoff = Math.min(now - policy.maxAgeMs, start.cutoff + (performance.now() - start.at));
    return { ...policy, maxAgeMs: now - cutoff };
  };
}
