/**
 * Holds a log's reads of the state (resets, snapshots) until the test lets them go, counting those under way: a reset
 * then keeps its replay slot and its turn for as long as a test needs it to.
 */
import type { CommittedLog } from "../sdk/contract.ts";

export interface HeldReads {
  /** Reads started and not yet over. */
  reading: number;
  /** The most reads under way at once. */
  most: number;
  release(): void;
}

/** Holds every read of the state the log starts until release(). */
export function holdStateReads(log: CommittedLog): HeldReads {
  const snapshotPages = log.snapshotPages;
  const released = Promise.withResolvers<void>();
  const held = { reading: 0, most: 0, release: () => released.resolve() };
  log.snapshotPages = (query, pageSize) =>
    (async function* () {
      held.most = Math.max(held.most, ++held.reading);
      try {
        await released.promise;
        yield* snapshotPages(query, pageSize);
      } finally {
        held.reading--;
      }
    })();
  return held;
}
