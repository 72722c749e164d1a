/**
 * A replica that does not lead follows the shared store: it polls the store's head and appends what the leader
 * committed to its own committed log, so its readers (SSE, /v1, NATS replay) get every update within a poll of its
 * commit, and a replica that becomes the leader continues the log where it stands.
 */
import { isStoreReplaced, StoreReplacedError, type Store } from "../sdk/contract.ts";
import type { Logger } from "../sdk/telemetry.ts";
import type { HostLog } from "../core/committed-log.ts";
import { ALL } from "../protocol/streams.ts";
import { sleep, TIMED_OUT, until } from "../protocol/retry.ts";
import { AHEAD_WAIT_MS } from "../sdk/resume.ts";

/** Updates read from the store at a time while catching up. */
const PAGE = 1_000;

/** The error checkSameStore throws: what differs, and what to do. */
function replaced(what: string): StoreReplacedError {
  return new StoreReplacedError(`the store was replaced: ${what}; restart kubemeta to serve the store as it is now`);
}

/**
 * Throws StoreReplacedError when the store's epoch is known and not the log's, or its head is below the log's: the
 * store was replaced under this process (wiped, restored, another database at the same address), as a store that
 * finds its own file replaced tells (StoreContext.replaced). The log holds only what the store committed, and a head
 * never goes back but for a copy restored in place, whose versions after its head a leader would number again, for
 * other updates, under the epoch this process has served them in. Its log's versions mean nothing in another epoch,
 * and serving or continuing them would hand consumers a mix of two: the process ends, and starts over on the store as
 * it is now.
 */
export function checkSameStore(log: HostLog, store: { epoch?: string; head: number } | undefined): void {
  if (store?.epoch !== undefined && store.epoch !== log.epoch) {
    const now = store.epoch ? `now ${store.epoch}` : "gone (the store is empty)";
    throw replaced(`its epoch is ${now}, this process's log is of epoch ${log.epoch}`);
  }
  if (store && store.head < log.head()) {
    throw replaced(
      `its head is ${store.head}, below this process's log (${log.head()}), in its epoch ${log.epoch}: a copy ` +
        "restored in place; give it a new epoch first (main.ts new-epoch), or consumers past its head get other " +
        "updates under versions they hold",
    );
  }
}

export interface Follower {
  /**
   * Ends the polling at once, not waiting for a read in progress (over a path that drops packets it hangs for
   * store.timeout, holding up a term's start and a shutdown), whose answer is then ignored; safe twice.
   */
  stop(): Promise<void>;
  /** Why the last poll failed, or was given up unanswered, until one succeeds (for /readyz). */
  failure(): Error | undefined;
}

/** Thrown in place of an answer of the store once its asker has stopped: nothing the answer brings is to be used. */
class Stopped extends Error {}

/** Waits for the answer to a request to the store (a follower's, a term's start: bounded). */
export type Ask = <T>(request: Promise<T>) => Promise<T>;

/**
 * Waits for the store's answers until `stopped` aborts (then throws Stopped), each for `ms` at most (then throws
 * `unanswered`): the request may go on, its answer is dropped.
 */
export function answering(stopped: AbortSignal, ms = Infinity, unanswered = ""): Ask {
  return async (request) => {
    const result = await until(request, Date.now() + ms, stopped);
    if (stopped.aborted) throw new Stopped();
    if (result === TIMED_OUT) throw new Error(unanswered);
    return result;
  };
}

/** Appends to `log` what the store committed after its head, through `head`, each page's read awaited by `ask`. */
export async function catchUp(store: Store, log: HostLog, head: number, ask: Ask = (read) => read): Promise<void> {
  while (log.head() < head) {
    const updates = await ask(store.readUpdates({ stream: ALL, after: log.head(), to: head, limit: PAGE }));
    // Nothing left to read below `head` means retention pruned it meanwhile: the next poll starts past it.
    if (updates.length === 0) return;
    log.append(updates);
  }
}

export interface FollowOptions {
  store: Store;
  log: HostLog;
  logger: Logger;
  intervalMs: number;
  /** The store was replaced: following stops. */
  onReplaced(error: StoreReplacedError): void;
  /**
   * Why the store was just found failing, by a leader's term that could not write it: said until a read succeeds,
   * rather than a readiness its first read (which a store that does not answer holds up to store.timeout) would deny.
   */
  failing?: Error;
  /**
   * How long a read may go unanswered (the Lease's duration) before it is given up, as one that failed, and made
   * again: over a path that drops packets a read fails only after store.timeout, and meanwhile the replica would
   * contend, win the Lease from a standby that reaches the store and hold it while it cannot write; nor would it
   * contend again until then, though a new connection (a load balancer's failover hangs the old one only) would be
   * answered at once. Given-up reads that still hang number store.timeout / unansweredMs at most.
   */
  unansweredMs?: number;
}

export function followStore(options: FollowOptions): Follower {
  const { store, log, logger, intervalMs, onReplaced, failing, unansweredMs = Infinity } = options;
  const stopped = new AbortController();
  let failure: Error | undefined = failing;
  // Following again after a failure (a term whose start the store did not answer): the log is behind the store from
  // the start, not from the stale timer's end, a reply short of a `to` past its head meanwhile a reset's first step.
  if (failing) log.setBehindStore(true);
  const ask = answering(
    stopped.signal,
    unansweredMs,
    `no answer from the store in ${unansweredMs} ms (ha.leaseDuration); reading it again`,
  );
  // The log's head tells a reader that its position is ahead of the store (a RESET) only if the store was read after
  // the reader came: it waits AHEAD_WAIT_MS for the log to get there, so once no read begun in that long has
  // succeeded, the log counts as behind the store. A read that hangs (a path that drops packets) fails only after
  // store.timeout, and a RESET meanwhile would have a consumer moving from a replica further on drop its state.
  let stale: ReturnType<typeof setTimeout> | undefined;
  const readAt = (began: number) => {
    clearTimeout(stale);
    stale = setTimeout(() => log.setBehindStore(true), AHEAD_WAIT_MS - (performance.now() - began));
    stale.unref();
  };
  readAt(performance.now());
  const running = (async () => {
    while (!stopped.signal.aborted) {
      const began = performance.now();
      try {
        const position = await ask(store.position());
        const { head, oldest, whole } = position;
        checkSameStore(log, position);
        if (oldest > log.oldest()) log.setOldest(oldest, await ask(Promise.resolve(store.horizons?.())));
        await catchUp(store, log, head, ask);
        // The leader's first sync is over (its mark committed with, or after, its last update through `head`).
        if (whole) log.markWhole();
        if (failure) logger.info("following the store again", { head });
        failure = undefined;
        log.setBehindStore(false);
        readAt(began);
      } catch (error) {
        // Stopped during a read: what it brings, late, is another owner's business (a term that reads the log itself).
        if (stopped.signal.aborted) return;
        if (isStoreReplaced(error)) {
          onReplaced(error as StoreReplacedError);
          return;
        }
        if (!failure) logger.warn("cannot read the store to follow it; retrying", { error });
        failure = error instanceof Error ? error : new Error(String(error));
        log.setBehindStore(true);
      }
      await sleep(intervalMs, stopped.signal);
    }
  })();
  return {
    async stop() {
      stopped.abort();
      await running;
      // Not told the log is up to date: a term starting (leader.ts) says so once it has caught up, and one whose
      // start fails follows again from a log still behind.
      clearTimeout(stale);
    },
    failure: () => failure,
  };
}
