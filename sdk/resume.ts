/**
 * A resume point a little ahead of this replica's log. With `ha`, readers are spread over replicas that follow the
 * store a poll behind the leader (`ha.followInterval`, 250 ms): a client that moves from one replica to another may
 * come back with a position this one has not read yet. Waiting for it to get there, briefly, keeps the promise that
 * consumers see no RESET when they move or a leader fails over; a position that stays ahead is one this store never
 * had (the store was replaced), and the reader starts over as before.
 */
import type { CommittedLog } from "./contract.ts";
import { ALL } from "../protocol/streams.ts";

/** How long a reader waits for the log to reach a resume point ahead of its head: several follow polls. */
export const AHEAD_WAIT_MS = 2_000;

/** Resolves true once the log's head reaches `version`; false after AHEAD_WAIT_MS, or when `signal` aborts. */
export async function reachVersion(log: CommittedLog, version: number, signal?: AbortSignal): Promise<boolean> {
  if (log.head() >= version) return true;
  const timeout = AbortSignal.timeout(AHEAD_WAIT_MS);
  const give = signal ? AbortSignal.any([signal, timeout]) : timeout;
  for await (const _ of log.follow({ stream: ALL, after: log.head(), signal: give }))
    if (log.head() >= version) return true;
  return log.head() >= version;
}
