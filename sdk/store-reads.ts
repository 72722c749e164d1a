/**
 * A read of the store that failed (a remote store down, a replica's path to it cut) is the store's failure, not the
 * reader's: every sink that reads the log tells its reader to come back later and logs it at most once a minute, as
 * /v1/updates answers 503. Its reads are wrapped so that such a failure is told apart from a fault of the sink's own.
 */
import { isBehindRetention } from "./contract.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";

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

/**
 * `read`, or `signal`'s reason thrown once it aborts, whichever comes first: a read the store holds (a remote store
 * that stopped answering, given up only at its own timeout) keeps no stop waiting. The read goes on; its result, or
 * its failure, is dropped.
 */
export async function untilAborted<T>(read: Promise<T>, signal: AbortSignal): Promise<T> {
  const result = await until(read, Infinity, signal);
  if (result === TIMED_OUT) throw signal.reason;
  return result;
}

/**
 * `pages`, each read given up as `signal` aborts (untilAborted), and none started once it has. A generator given up so
 * ends once its read does, letting its read transaction go then, with nobody waiting for it.
 */
export async function* pagesUntilAborted<T>(pages: AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
  const iterator = pages[Symbol.asyncIterator]();
  let reading = false;
  try {
    for (;;) {
      // Aborted while its caller took the last page: a read started now would be read for nobody.
      signal.throwIfAborted();
      reading = true;
      const page = await untilAborted(iterator.next(), signal);
      reading = false;
      if (page.done) return;
      yield page.value;
    }
  } finally {
    const ending = iterator.return?.();
    if (reading) ending?.catch(() => {});
    else await ending;
  }
}
