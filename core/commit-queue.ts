/**
 * The pipeline's batching: numbered updates and resume points wait here until one commit
 * takes all that is pending. A failed commit is retried with backoff, the same batch
 * again, until it lands, the store fences this writer out, or abandon() gives it up.
 */
import { type CommitBatch, isStoreReplaced, isWriterFenced, type Store } from "../sdk/contract.ts";
import { type Logger, type Metrics, outageLog } from "../sdk/telemetry.ts";
import type { Update } from "../sdk/model.ts";
import { Backoff, sleep } from "../protocol/retry.ts";

/** A commit refused by another writer's term, with the updates this writer gives up. */
export function sayFenced(logger: Logger, error: Error, uncommittedUpdates: number): void {
  logger.warn("another kubemeta now writes to the store; this one commits nothing more", {
    error: error.message,
    uncommittedUpdates,
  });
}

/**
 * How long a commit may wait for the store's answer before /readyz says the store is not answering, and a reader's
 * read before it is given up (committed-log.ts). A store that accepts the connection and never answers (a server
 * stopped, a path that drops packets, a disk that hangs) fails a request only after store.timeout (60 s; a commit to
 * a file, never): until then readiness would see only the last commit that finished, and
 * every reader would wait. The largest commit is one full queue (highWater, 5,000 updates): 0.1–0.5 s here during a
 * 10,000-pod initial sync, to a file and to the test libSQL server, the sync's 1,700–3,000-update commits 0.15 s on
 * average in bench/RESULTS.md; a read is a page, smaller. 10 s is well above a slow disk's or a distant server's.
 */
export const STORE_UNANSWERED_MS = 10_000;

/**
 * The longest the store goes unasked for a commit while this process writes: check() commits an empty batch once it
 * has been asked for none in as long, less a tick, so that a store that hangs or fences this writer out is found on a
 * quiet cluster too, within this and STORE_UNANSWERED_MS.
 */
export const STORE_CHECK_MS = STORE_UNANSWERED_MS / 4;
/**
 * How often the owner calls check(). A tick, not STORE_CHECK_MS: checked once a period, a store asked a little while
 * before is either skipped, and left unasked for more than a period (up to one and a half with half a period's
 * leeway), or asked again, an empty batch each period under churn too. Each tick: never more than STORE_CHECK_MS
 * unasked, an empty batch only on a store asked for nothing in STORE_CHECK_MS less a tick (each 2–2.5 s when quiet).
 */
export const STORE_CHECK_TICK_MS = STORE_CHECK_MS / 5;

export interface CommitQueueOptions {
  store: Store;
  logger: Logger;
  metrics: Metrics;
  /** schedule() asks its caller to wait once this many updates are pending. */
  highWater: number;
  /** Called with each batch the store took, in version order, with the resume points committed with it. */
  onCommitted(updates: Update[], resumePoints: Map<string, string>): void;
  /**
   * The store refused a commit because another process now writes to it: nothing more is committed. Said by the
   * owner (sayFenced), which first tells another writer from a store given a new epoch (`new-epoch`).
   */
  onFenced?(error: Error, uncommittedUpdates: number): void;
  /**
   * Called after each failed commit that is retried, with how long its batch has failed (from its first try on); and
   * every second while a commit has waited STORE_UNANSWERED_MS and more for its answer, as one failing that long.
   */
  onFailing?(error: Error, failingMs: number): void;
}

export interface Uncommitted {
  updates: number;
  /** The resume-point keys (`resource` of the ChangeSink) whose newest value was not committed. */
  resumePoints: string[];
}

export interface CommitQueue {
  /** Adds an update (the next version) and the digest of the object it leaves. */
  push(update: Update, digest: number): void;
  /** Sets the resume point `key` to commit with the next batch. */
  resume(key: string, value: string): void;
  /**
   * Commits with the next batch (or alone) that the store's objects are whole (CommitBatch.whole), after everything
   * pushed before; resolves once that commit landed, never if it is abandoned or fenced out.
   */
  markWhole(): Promise<void>;
  /** Commits an empty batch unless the store was asked for a commit in the last STORE_CHECK_MS less a tick. */
  check(): void;
  /** Starts a commit unless one runs; resolves when there is room again if the queue is full. */
  schedule(): void | Promise<void>;
  /** Resolves once everything pending is committed. */
  flush(): Promise<void>;
  /** Commits what is pending; after it, a failing commit is thrown instead of retried. */
  stop(): Promise<void>;
  /** Gives up on what is not committed and commits nothing more; returns what is given up. */
  abandon(): Uncommitted;
  /** Why the last commit failed, while it is being retried; undefined once a commit succeeds. */
  failure(): Error | undefined;
  /** How long the commit in flight has waited for the store's answer (ms); 0 with none in flight. */
  unansweredMs(): number;
}

export function createCommitQueue(options: CommitQueueOptions): CommitQueue {
  const { store, logger, metrics, highWater } = options;
  let pending: Update[] = [];
  let pendingDigests: number[] = [];
  let pendingResume = new Map<string, string>();
  /** Resolved once a commit carried the whole mark; set while the mark waits for its commit. */
  let pendingWhole: PromiseWithResolvers<void> | undefined;
  /** Set by check(): the next commit goes ahead with nothing in it. */
  let pendingCheck = false;
  /** When the store was last asked for a commit (performance.now()). */
  let lastAskedAt = performance.now();
  let flushing: Promise<void> | undefined;
  /** Resolved when there is room again in the queue (freeRoom). */
  let roomFreed: PromiseWithResolvers<void> | undefined;
  let stopping = false;
  /** The batch drain() is committing, taken off `pending`: still uncommitted until the store says so. */
  let committing: { updates: Update[]; resume: Map<string, string> } | undefined;
  let lastFailure: Error | undefined;
  /** When the store was asked for the commit in flight (performance.now()); undefined between tries. */
  let askedAt: number | undefined;
  /** Set by abandon(): wakes the retry's backoff, and drain() commits nothing more. */
  const abandoned = new AbortController();

  const committed = metrics.counter(
    "kubemeta_updates_committed_total",
    "Updates committed to the store, by kind and type.",
  );
  const commitFailures = metrics.counter(
    "kubemeta_commit_failures_total",
    "Store commits that failed and were retried.",
  );
  // A sample from the start: an alert on its rate has a series to work on before the first failure.
  commitFailures.inc({}, 0);
  // Retried every 2 s at most while the store is away, for minutes maybe: its first failure is the error.
  const outage = outageLog(logger, "store commit failed; retrying", "store commits succeed again");

  function schedule(): void | Promise<void> {
    if (!flushing) flushing = Promise.resolve().then(drain).finally(freeRoom);
    if (pending.length < highWater) return;
    roomFreed ??= Promise.withResolvers();
    return roomFreed.promise;
  }

  /**
   * Sources held back by a full queue go on as soon as a commit takes what is pending, not once everything is
   * committed: they parse the next batch while the store writes this one.
   */
  function freeRoom(): void {
    roomFreed?.resolve();
    roomFreed = undefined;
  }

  /**
   * The store's commit of `batch`. One unanswered for STORE_UNANSWERED_MS is said then, as /readyz says it, told to
   * onFailing each second from then on, and its answer said once it comes: a store that hangs fails it only after
   * store.timeout (or never), unlogged and unseen by the term until then.
   */
  async function ask(batch: CommitBatch, firstTryAt: number): Promise<void> {
    const at = performance.now();
    askedAt = at;
    lastAskedAt = at;
    let said = false;
    // With `ha`, a term that cannot write for a Lease's duration ends, whether its commits fail or hang.
    const failing = () => {
      if (abandoned.signal.aborted) return;
      const waitedMs = Math.round(performance.now() - at);
      options.onFailing?.(new Error(`no answer from the store in ${waitedMs} ms`), performance.now() - firstTryAt);
    };
    let stillFailing: Timer | undefined;
    const late = setTimeout(() => {
      said = true;
      logger.warn("store not answering a commit; waiting for it", {
        waitedMs: STORE_UNANSWERED_MS,
        updates: batch.updates.length,
      });
      failing();
      stillFailing = setInterval(failing, 1_000);
    }, STORE_UNANSWERED_MS);
    try {
      await store.commit(batch);
    } finally {
      clearTimeout(late);
      clearInterval(stillFailing);
      askedAt = undefined;
      if (said) logger.info("store answers again", { waitedMs: Math.round(performance.now() - at) });
    }
  }

  /** Commits `updates` until it lands; false if the store fenced this writer out or the queue was abandoned. */
  async function commitOne(
    updates: Update[],
    digests: number[],
    resume: Map<string, string>,
    whole: boolean,
  ): Promise<boolean> {
    // At most 2 s apart: a store back from an outage takes writes (and /readyz says so) within 2 s.
    const backoff = new Backoff({ initialMs: 100, maxMs: 2_000 });
    const firstTryAt = performance.now();
    for (;;) {
      try {
        await ask({ updates, digests, resumePoints: resume, ...(whole ? { whole } : {}) }, firstTryAt);
        lastFailure = undefined;
        outage.succeeded();
        return true;
      } catch (error) {
        lastFailure = error instanceof Error ? error : new Error(String(error));
        // The store told the host, which stops (StoreContext.replaced): no retry would land anywhere.
        if (isStoreReplaced(lastFailure)) {
          abandoned.abort();
          return false;
        }
        if (isWriterFenced(lastFailure)) {
          abandoned.abort();
          options.onFenced?.(lastFailure, updates.length + pending.length);
          return false;
        }
        commitFailures.inc();
        outage.failed({ error, updates: updates.length });
        if (stopping) throw error;
        options.onFailing?.(lastFailure, performance.now() - firstTryAt);
        await sleep(backoff.next(), abandoned.signal);
        if (abandoned.signal.aborted) return false;
      }
    }
  }

  async function drain(): Promise<void> {
    try {
      while (
        (pending.length > 0 || pendingResume.size > 0 || pendingWhole || pendingCheck) &&
        !abandoned.signal.aborted
      ) {
        pendingCheck = false;
        const updates = pending;
        const digests = pendingDigests;
        const resume = pendingResume;
        const whole = pendingWhole;
        pending = [];
        pendingDigests = [];
        pendingResume = new Map();
        pendingWhole = undefined;
        committing = { updates, resume };
        freeRoom();
        if (!(await commitOne(updates, digests, resume, whole !== undefined))) return;
        committing = undefined;
        countCommitted(updates);
        options.onCommitted(updates, resume);
        whole?.resolve();
      }
    } finally {
      flushing = undefined;
    }
  }

  /** One increment per kind and type of a batch, not one per update. */
  function countCommitted(updates: Update[]) {
    const counts = new Map<string, number>();
    for (const u of updates) counts.set(`${u.kind} ${u.type}`, (counts.get(`${u.kind} ${u.type}`) ?? 0) + 1);
    for (const [key, n] of counts) {
      const [kind, type] = key.split(" ") as [string, string];
      committed.inc({ kind, type }, n);
    }
  }

  async function flush(): Promise<void> {
    while (flushing) await flushing;
  }

  return {
    push(update, digest) {
      pending.push(update);
      pendingDigests.push(digest);
    },
    resume(key, value) {
      pendingResume.set(key, value);
    },
    markWhole() {
      pendingWhole ??= Promise.withResolvers();
      const { promise } = pendingWhole;
      schedule();
      return promise;
    },
    check() {
      if (flushing || performance.now() - lastAskedAt < STORE_CHECK_MS - STORE_CHECK_TICK_MS) return;
      pendingCheck = true;
      schedule();
    },
    schedule,
    flush,
    async stop() {
      await flush();
      stopping = true;
    },
    abandon() {
      abandoned.abort();
      const updates = (committing?.updates.length ?? 0) + pending.length;
      const keys = new Set([...(committing?.resume.keys() ?? []), ...pendingResume.keys()]);
      return { updates, resumePoints: [...keys].sort() };
    },
    failure: () => lastFailure,
    unansweredMs: () => (askedAt === undefined ? 0 : performance.now() - askedAt),
  };
}
