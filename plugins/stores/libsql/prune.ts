/**
 * Retention: advances the log's horizon (meta.pruned_through) and deletes the updates at
 * or below it, in chunks so that no single statement blocks the event loop for long and
 * commits can interleave. An update that is still some object's current state stays (a
 * snapshot reads it), below the horizon, where readers of the log do not see it; once
 * its object changes, a later prune deletes it. Each stream has a horizon of its own too
 * (the last of its updates deleted): a reader of that stream may go on from below the
 * log's horizon down to its stream's, reading the updates kept there. The newest update (the head) is never pruned,
 * however old (Store.prune).
 */
import { yieldToEventLoop } from "../../../sdk/priority.ts";
import type { Client } from "@libsql/client";
import type { RetentionPolicy } from "../../../sdk/contract.ts";

/** Updates looked at per statement: each also removes scattered entries of the stream index, so keep it small. */
const PRUNE_CHUNK = 2_000;

/** Deletes the updates in (after, through] that no object points at (raising their streams' horizons: a trigger). */
export const DELETE_UNPINNED = `DELETE FROM updates WHERE version > ? AND version <= ?
  AND NOT EXISTS (SELECT 1 FROM objects AS o
    WHERE o.kind = updates.kind AND o.uid = updates.uid AND o.version = updates.version)`;
export const RAISE_HORIZON = "UPDATE meta SET pruned_through = max(pruned_through, ?) WHERE id = 1";

export interface PruneTarget {
  reader: Client;
  /** DELETE_UNPINNED, then RAISE_HORIZON to `through`, as one serialised write; returns how many it deleted. */
  deleteThrough(after: number, through: number): Promise<number>;
}

async function bounds(reader: Client): Promise<{ oldest: number; head: number }> {
  const row = (await reader.execute("SELECT pruned_through, head FROM meta WHERE id = 1")).rows[0];
  return { oldest: Number(row?.pruned_through ?? 0) + 1, head: Number(row?.head ?? 0) };
}

/**
 * The first version in [from, head] committed at or after `cutoff` (head + 1 if none).
 * Commit times grow with versions, so a binary search over the primary key finds it
 * without an index on time.
 */
async function firstAtOrAfter(reader: Client, from: number, head: number, cutoff: string): Promise<number> {
  let low = from;
  let high = head + 1;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    const time = (await reader.execute({ sql: "SELECT time FROM updates WHERE version = ?", args: [middle] })).rows[0]
      ?.time;
    if (time == null || String(time) < cutoff) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The version that ends the next chunk of stored updates in (after, through]; undefined when there are none. */
async function chunkEnd(reader: Client, after: number, through: number): Promise<number | undefined> {
  const sql =
    "SELECT max(version) AS last " +
    "FROM (SELECT version FROM updates WHERE version > ? AND version <= ? ORDER BY version LIMIT ?)";
  const last = (await reader.execute({ sql, args: [after, through, PRUNE_CHUNK] })).rows[0]?.last;
  return last == null ? undefined : Number(last);
}

export async function prune(
  target: PruneTarget,
  policy: RetentionPolicy,
  signal?: AbortSignal,
): Promise<{ removed: number; oldest: number }> {
  const { oldest, head } = await bounds(target.reader);
  let keepFrom = oldest;
  if (policy.maxUpdates > 0) keepFrom = Math.max(keepFrom, head - policy.maxUpdates + 1);
  // An age from before 1970 is older than every update, and its cutoff no Date holds (`maxAge: 1e20` has no bound).
  if (policy.maxAgeMs > 0 && policy.maxAgeMs < Date.now()) {
    const cutoff = new Date(Date.now() - policy.maxAgeMs).toISOString();
    // The newest update stays however old: its time is the floor of the next one's, read at a leader's start.
    keepFrom = Math.max(keepFrom, Math.min(head, await firstAtOrAfter(target.reader, oldest, head, cutoff)));
  }
  // From the start: below the old horizon lie updates kept for objects that have changed since.
  const through = keepFrom - 1;
  let removed = 0;
  let after = 0;
  for (;;) {
    const end = await chunkEnd(target.reader, after, through);
    if (end === undefined) {
      if (through >= oldest) await target.deleteThrough(after, through);
      break;
    }
    removed += await target.deleteThrough(after, end);
    after = end;
    // Each chunk raised the horizon to its end: stopped here, the log is whole from there on.
    if (signal?.aborted) break;
    await yieldToEventLoop();
  }
  return { removed, oldest: (await bounds(target.reader)).oldest };
}
