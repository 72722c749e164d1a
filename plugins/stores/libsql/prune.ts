/**
 * Retention: deletes the oldest updates, in chunks so that no single statement blocks the
 * event loop for long and commits can interleave. Deletes only a prefix of the log, so
 * it stays gap-free from its new oldest version. Never touches current objects.
 */
import { yieldToEventLoop } from "./connection.ts";
import type { Client } from "@libsql/client";
import type { RetentionPolicy } from "../../../core/contract.ts";

/** Updates deleted per statement: each also removes scattered entries of the stream index, so keep it small. */
const PRUNE_CHUNK = 2_000;

export interface PruneTarget {
  reader: Client;
  /** Deletes the updates below `version` as one serialised write; returns how many. */
  deleteBelow(version: number): Promise<number>;
}

async function bounds(reader: Client): Promise<{ oldest: number; head: number }> {
  const row = (await reader.execute("SELECT (SELECT min(version) FROM updates) AS oldest, head FROM meta WHERE id = 1")).rows[0];
  const head = Number(row?.head ?? 0);
  return { oldest: row?.oldest == null ? head + 1 : Number(row.oldest), head };
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
    const time = (await reader.execute({ sql: "SELECT time FROM updates WHERE version = ?", args: [middle] })).rows[0]?.time;
    if (time == null || String(time) < cutoff) low = middle + 1;
    else high = middle;
  }
  return low;
}

export async function prune(target: PruneTarget, policy: RetentionPolicy): Promise<{ removed: number; oldest: number }> {
  let { oldest, head } = await bounds(target.reader);
  let keepFrom = oldest;
  if (policy.maxUpdates > 0) keepFrom = Math.max(keepFrom, head - policy.maxUpdates + 1);
  if (policy.maxAgeMs > 0) {
    const cutoff = new Date(Date.now() - policy.maxAgeMs).toISOString();
    keepFrom = Math.max(keepFrom, await firstAtOrAfter(target.reader, oldest, head, cutoff));
  }
  let removed = 0;
  while (oldest < keepFrom) {
    const below = Math.min(keepFrom, oldest + PRUNE_CHUNK);
    removed += await target.deleteBelow(below);
    oldest = below;
    if (oldest < keepFrom) await yieldToEventLoop();
  }
  return { removed, oldest: (await bounds(target.reader)).oldest };
}
