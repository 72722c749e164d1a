/**
 * Holds a log's reads of the state (resets, snapshots) until the test lets them go, counting those under way: a reset
 * then keeps its replay slot and its turn for as long as a test needs it to; and its reads of updates, as a remote
 * store that stopped answering holds them.
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

export interface HeldPages {
  /** Pages of the state handed to the reads so far. */
  read: number;
  /** Lets one more page go. */
  next(): void;
  release(): void;
}

/** Lets the log's reads of the state go a page at a time: the first at once, each next one at next(). */
export function holdStatePages(log: CommittedLog): HeldPages {
  const snapshotPages = log.snapshotPages;
  let allowed = 1;
  let wake = Promise.withResolvers<void>();
  const held: HeldPages = {
    read: 0,
    next: () => {
      allowed++;
      wake.resolve();
    },
    release: () => {
      allowed = Infinity;
      wake.resolve();
    },
  };
  log.snapshotPages = (query, pageSize) =>
    (async function* () {
      for await (const page of snapshotPages(query, pageSize)) {
        while (held.read >= allowed) {
          wake = Promise.withResolvers<void>();
          await wake.promise;
        }
        held.read++;
        yield page;
      }
    })();
  return held;
}

/** `read`, each call held until release() as a store that stopped answering holds it, counted while under way. */
export function holdCalls<A extends unknown[], T>(
  read: (...args: A) => Promise<T>,
): HeldReads & { read: (...args: A) => Promise<T> } {
  const released = Promise.withResolvers<void>();
  const held: HeldReads & { read: (...args: A) => Promise<T> } = {
    reading: 0,
    most: 0,
    release: () => released.resolve(),
    async read(...args) {
      held.most = Math.max(held.most, ++held.reading);
      try {
        await released.promise;
        return await read(...args);
      } finally {
        held.reading--;
      }
    },
  };
  return held;
}

/** Holds the log's reads of updates after `after` (a replay's first page) until release(); other reads go on. */
export function holdUpdateReads(log: CommittedLog, after: number): HeldReads {
  const read = log.read.bind(log);
  const held = holdCalls(read);
  log.read = (query) => (query.after === after ? held.read(query) : read(query));
  return held;
}
