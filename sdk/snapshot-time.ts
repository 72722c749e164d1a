/**
 * The `time` a snapshot's `ADDED` envelopes carry: when it was read, by the clock, but never before the newest update
 * its version includes, the floor each update's time keeps too (core/update-time.ts). A clock stepped back (an NTP
 * step, a VM restored; or this replica's behind the leader's that stamped the log) would otherwise stamp a snapshot
 * before the updates that precede it on a stream, and a consumer that orders by `time` would see it go back.
 */
import { isBehindRetention, type CommittedLog } from "./contract.ts";
import { ALL } from "../protocol/streams.ts";
import { fromStore, untilAborted } from "./store-reads.ts";

/**
 * For a snapshot consistent with `version`: the time of the update at `version` or, retention past it since the
 * snapshot was read (it was the head then, which retention keeps while it is the head), the oldest kept after it,
 * which is no earlier. On an `ha` replica that does not lead, whose log may not have reached the version the store's
 * snapshot is of yet, the log's head's. A read that fails throws as the log's reads do (fromStore); `signal` gives it
 * up.
 */
export async function snapshotTime(log: CommittedLog, version: number, signal: AbortSignal): Promise<string> {
  const now = Date.now();
  let floor = 0;
  for (let from = Math.min(version, log.head()); from > 0; ) {
    try {
      const read = log.read({ stream: ALL, after: from - 1, limit: 1, noPosition: true }).catch(fromStore);
      const [update] = await untilAborted(read, signal);
      floor = Date.parse(update?.time ?? "") || 0;
      break;
    } catch (error) {
      if (!isBehindRetention(error)) throw error;
      // Pruned meanwhile: the oldest kept, past `from` (no loop without end), is read next.
      from = error.oldest;
    }
  }
  return new Date(Math.max(floor, now)).toISOString();
}
