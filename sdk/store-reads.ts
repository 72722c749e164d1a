/**
 * A read of the store that failed (a remote store down, a replica's path to it cut) is the store's failure, not the
 * reader's: every sink that reads the log tells its reader to come back later and logs it at most once a minute, as
 * /v1/updates answers 503. Its reads are wrapped so that such a failure is told apart from a fault of the sink's own.
 */
import { isBehindRetention } from "./contract.ts";

/** A read of the store that failed; `error` is what the store threw. */
export class StoreReadFailed extends Error {
  constructor(readonly error: unknown) {
    super("a read of the store failed");
  }
}

/** Rethrows a read's failure as the store's, but for a prune that overtook the reader (it starts over). */
export function fromStore(error: unknown): never {
  throw isBehindRetention(error) ? error : new StoreReadFailed(error);
}

/** `reads` with their failures rethrown by fromStore. */
export async function* readingStore<T>(reads: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* reads;
  } catch (error) {
    fromStore(error);
  }
}
