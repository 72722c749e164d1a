/**
 * `ha`: several replicas on one shared store. Every replica follows the store's log and serves readers; the one that
 * holds the Lease (kube/election.ts) leads a term (host/leader.ts). A term ends when the Lease is lost, when the
 * store refuses a commit because another replica leads now (fencing), or when its commits have failed for longer
 * than the Lease's duration (this replica cut off from the store, which another may reach); the replica then
 * follows again. Sinks that deliver wait for a term (SinkContext.leadership), so only the leader publishes.
 */
import type { HaConfig } from "./ha-config.ts";
import { causeOf, outageLog, type Logger } from "../sdk/telemetry.ts";
import { sayFenced, type Uncommitted } from "../core/commit-queue.ts";
import type { Elector } from "../kube/election.ts";
import { aborted, Backoff, sleep, TIMED_OUT, until } from "../protocol/retry.ts";
import { followStore, type Follower } from "./follower.ts";
import { isStoreReplaced, isWriterFenced, type StoreReplacedError } from "../sdk/contract.ts";
import { LeaseNotHeldError, startLeaderTerm, type LeaderOptions, type LeaderTerm } from "./leader.ts";
import type { Terms } from "./leadership.ts";
import { wholeYet } from "../sdk/resume.ts";
import { haAgreement } from "./ha-agreement.ts";
import { haTermMetrics, type TermEndReason } from "./ha-term-metrics.ts";

/** Why a term ended, and what its log line says besides. */
interface TermEnd {
  reason: TermEndReason;
  [detail: string]: unknown;
}

// Fenced now and again is a leader paused past its Lease; fenced over and over is a writer outside this Lease, or one
// inside it under this replica's own name (two replicas given one ha.identity both hold the Lease).
const FENCED_HINT =
  "if this repeats, another kubemeta writes this store without this Lease (another ha.lease, or no ha), " +
  "or another replica has this one's ha.identity";

/** Fenced twice in one Lease: a writer outside the election, or one inside it under this replica's name. */
const TAKEN_AGAIN = "another writer keeps taking the store while this replica holds the Lease";
const TAKEN_AGAIN_HINT =
  "give each replica its own ha.identity (POD_NAME), every kubemeta on this store the same ha.lease, " +
  "and run none on it without ha; until then the writers fence each other out and sources list again";

/** A term's first line; after failed tries to become the writer, their outage's end too, with how long it took. */
const LEADING = "leading: this replica writes the store and runs the sources";

export interface ReplicationOptions {
  ha: HaConfig;
  elector: Elector;
  leaderOptions: Omit<LeaderOptions, "onFenced" | "onCommitFailing">;
  terms: Terms;
  logger: Logger;
  /** The store was replaced under this replica (follower.ts): it leads no more and follows no more. */
  onReplaced(error: StoreReplacedError): void;
}

export interface Replication {
  /** What keeps this replica from being ready: a store it cannot follow, or its term's reasons. */
  waiting(): string[];
  /** For shutdown: stops contending; a term in progress stops its sources and commits what is pending. */
  stopLeading(): Promise<void>;
  /** Ends the term (after the sinks have drained), stops following and releases the Lease; safe twice. */
  stop(): Promise<void>;
  /** Releases the Lease now, whatever the term still waits for: a shutdown out of time must not hold it. */
  release(): Promise<void>;
  uncommitted(): Uncommitted | undefined;
}

export function startReplication(options: ReplicationOptions): Replication {
  const { ha, elector, leaderOptions, terms, logger } = options;
  const { store, log, metrics } = leaderOptions;
  const whole = wholeYet(log);
  const { identity } = ha;
  elector.annotate(haAgreement({ identity, cluster: leaderOptions.config.cluster, epoch: log.epoch, logger, metrics }));
  const stopped = new AbortController();
  const { leading, begun: termsBegun, countEnd, fencedHoldingLease } = haTermMetrics(metrics);
  // A store this replica reads but cannot become the writer of is tried again later and later, up to a Lease's
  // duration: each try takes the Lease and gives it back, a write to the API server. (One it cannot read at all, it
  // does not contend for: untilReadable.)
  const writerBackoff = new Backoff({ initialMs: ha.retryPeriodMs, maxMs: ha.leaseDurationMs, jitter: "equal" });
  // Each try a line would be one every few seconds for as long as it lasts: one error (and one per new cause), then a
  // warning a minute; the term that begins at last says how long it took.
  const writerOutage = outageLog(logger, "cannot become the store's writer; following again", LEADING);
  const replaced = (error: StoreReplacedError) => {
    stopped.abort();
    options.onReplaced(error);
  };
  const follow = (failing?: Error) =>
    followStore({
      store,
      log,
      logger,
      intervalMs: ha.followIntervalMs,
      onReplaced: replaced,
      failing,
      unansweredMs: ha.leaseDurationMs,
    });
  let follower: Follower | undefined = follow();
  let leader: LeaderTerm | undefined;
  /** The Lease (its term's signal) in which a fenced term was followed by a new one at once. */
  let retakenIn: AbortSignal | undefined;

  /**
   * One term: from winning the Lease to losing it (or being fenced, or unable to write); false when the replica stops
   * meanwhile.
   */
  async function lead(lost: AbortSignal): Promise<boolean> {
    /** How the store ended the term, if it did (the first says). */
    const ending = Promise.withResolvers<TermEnd>();
    /** The failure of the commits that ended the term, if they did. */
    let unwritable: Error | undefined;
    /** The refusal that ended the term, if the store's fencing did. */
    let fencedBy: Error | undefined;
    // A Lease's duration is how long a leader may be gone before a standby takes over: one that cannot write for as
    // long is gone as far as the store is concerned, and a standby may reach it.
    const onCommitFailing = (error: Error, failingMs: number) => {
      if (failingMs <= ha.leaseDurationMs) return;
      unwritable ??= error;
      ending.resolve({ reason: "store not writable", commitsFailingMs: Math.round(failingMs), error: error.message });
    };
    // The elector has said why and given the Lease back if it still held it; the store is not at fault.
    const lostWhileStarting = (reason?: string) => {
      logger.warn("lost the Lease while becoming the store's writer; following again", reason ? { reason } : {});
      follower = follow();
      return true;
    };
    await follower?.stop();
    follower = undefined;
    try {
      leader = await startLeaderTerm({
        ...leaderOptions,
        onFenced: (error, uncommittedUpdates) => {
          if (uncommittedUpdates !== undefined) sayFenced(logger, error, uncommittedUpdates);
          fencedBy ??= error;
          ending.resolve({ reason: "fenced", hint: FENCED_HINT });
        },
        onCommitFailing,
        // Within a renewal's deadline, as a leader that cannot renew the Lease gives it up: a standby may reach the
        // store that this replica cannot. Given up too once the Lease is lost meanwhile: the term would begin over
        // (its sources listing the cluster) only to end at once.
        starting: {
          stopped: AbortSignal.any([stopped.signal, lost]),
          unansweredMs: ha.renewDeadlineMs,
          held: () => elector.holds(),
        },
      });
    } catch (error) {
      // Stopped while the store did not answer: the stop releases the Lease.
      if (stopped.signal.aborted) return false;
      if (lost.aborted) return lostWhileStarting();
      // Not surely held any more, or another replica raised the store's term between this one's read of it and its
      // raise (Store.lead's check: a pause after it): another leads, as expected. Given back if it is still ours.
      if (error instanceof LeaseNotHeldError || isWriterFenced(error)) {
        await elector.release();
        return lostWhileStarting(error.message);
      }
      if (isStoreReplaced(error)) {
        await elector.release();
        replaced(error as StoreReplacedError);
        return false;
      }
      const retryInMs = writerBackoff.next();
      writerOutage.failed({ error, retryInMs }, causeOf(error), "error");
      await elector.release();
      // Contending again waits for a read of the store that succeeds (untilReadable), not for the follower's first.
      follower = follow(error instanceof Error ? error : new Error(String(error)));
      await sleep(retryInMs, stopped.signal);
      return true;
    }
    // Stopped or lost while the sources started (their starts cut, the term returned): the term does not begin. The
    // stop's leader.stop() stops its sources and commits what they sent.
    if (stopped.signal.aborted) return false;
    // Lost: given up as a loss before then is. What its sources sent and it did not commit, the next leader delivers.
    if (lost.aborted) {
      await leader.abandon();
      leader = undefined;
      return lostWhileStarting();
    }
    writerBackoff.reset();
    terms.begin(() => elector.holds());
    leading.set(1);
    termsBegun.inc();
    const began = { head: log.head() };
    if (!writerOutage.succeeded(began)) logger.info(LEADING, began);
    // `until` lets go of its listener on `stopped` when the term ends: one per term would pile up on a replica that
    // leads for months. (`lost` is this term's own signal, dropped with it.)
    const ended = await until(
      Promise.race([aborted(lost).then((): TermEnd => ({ reason: "lease lost" })), ending.promise]),
      Infinity,
      stopped.signal,
    );
    if (ended === TIMED_OUT) return false;
    terms.end();
    leading.set(0);
    countEnd(ended.reason);
    // Nothing given up here is lost: a source's resume point is committed with its updates only, so the next leader
    // delivers them again.
    const { updates } = await leader.abandon();
    leader = undefined;
    const { reason, ...why } = ended;
    // Fenced while the Lease is surely still this replica's: a writer without it raised the store's term (or, on a
    // store that ignores lead()'s check, a deposed replica's ask for it that landed late). A new term raises it again
    // at once, not a handover that leaves the store unwritten meanwhile; once per Lease won: fenced again, another
    // writer keeps taking the store (TAKEN_AGAIN, an error), and the Lease is handed over as below. (A store emptied
    // under it refuses too, its term not raised: following it, the replica finds it replaced.)
    const refusal = isWriterFenced(fencedBy) ? fencedBy : undefined;
    if (refusal && refusal.storedTerm > refusal.term && elector.holds()) {
      fencedHoldingLease.inc();
      if (retakenIn !== lost) {
        retakenIn = lost;
        logger.warn("fenced while holding the Lease; taking the store's writer's term again", {
          uncommittedUpdates: updates,
        });
        return true;
      }
      logger.error(TAKEN_AGAIN, { term: refusal.term, storedTerm: refusal.storedTerm, hint: TAKEN_AGAIN_HINT });
    }
    logger.warn("no longer leading; following the store", { reason, uncommittedUpdates: updates, ...why });
    follower = follow(reason === "store not writable" ? unwritable : undefined);
    // Fenced, or unable to write, while still holding the Lease: let someone else have it, and contend again only
    // after a standby (trying every retryPeriod, jittered) has had its chance: the writer backoff's ceiling. (Its
    // first steps, half a retryPeriod, would win the Lease back before a standby and hold it while the store's
    // lead() waits out store.timeout.)
    if (reason !== "lease lost") {
      await elector.release();
      await sleep(ha.leaseDurationMs, stopped.signal);
    }
    return true;
  }

  /**
   * Resolves once this replica reads the store (at once while it does). One that cannot read it cannot write it
   * either: contending, it would win the Lease, fail to become the writer and give it back, over and over for as
   * long as the store is away (a lone replica has nobody to hand it to), and take it from a standby that reaches it.
   */
  async function untilReadable(): Promise<void> {
    const failure = follower?.failure();
    if (!failure) return;
    logger.info("not contending for the Lease until the store can be read", { error: failure.message });
    while (follower?.failure() && !stopped.signal.aborted) await sleep(ha.followIntervalMs, stopped.signal);
  }

  /** Contends until this replica leads (its term's signal) or cannot read the store (undefined), or is stopped. */
  async function contend(): Promise<AbortSignal | undefined> {
    const unreadable = new AbortController();
    // A standby already contending when the store goes away would win the Lease its leader gives back.
    const watch = setInterval(() => follower?.failure() && unreadable.abort(), ha.followIntervalMs);
    try {
      return await elector.acquire(AbortSignal.any([stopped.signal, unreadable.signal]));
    } catch (error) {
      if (unreadable.signal.aborted && !stopped.signal.aborted) return undefined;
      throw error;
    } finally {
      clearInterval(watch);
    }
  }

  const electing = (async () => {
    while (!stopped.signal.aborted) {
      await untilReadable();
      if (stopped.signal.aborted) return;
      // Null: stopped (or the elector failed); undefined: the store became unreadable meanwhile, waited for above.
      const lost = await contend().catch((error: unknown) => {
        // Never contending again is this replica's end as a candidate: said, unless it is being stopped.
        if (!stopped.signal.aborted)
          logger.error("cannot contend for the Lease any more; this replica only follows", { error });
        return null;
      });
      if (lost === null) return;
      if (lost && !(await lead(lost))) return;
    }
  })();

  const stopLeading = async () => {
    stopped.abort();
    await electing;
    await leader?.stop();
  };
  let stopping: Promise<void> | undefined;
  return {
    waiting() {
      if (leader) return leader.waiting();
      const failure = follower?.failure();
      if (failure) return [`store not readable: ${failure.message}`];
      if (!follower) return ["taking over as the leader"];
      // As on the leader: ready means /v1/objects answers, which a new store's state does once its first sync is over.
      return whole() ? [] : ["the store's first sync is under way on the leader"];
    },
    stopLeading,
    stop() {
      stopping ??= (async () => {
        await stopLeading();
        terms.end();
        leading.set(0);
        await follower?.stop();
        await elector.release();
      })();
      return stopping;
    },
    uncommitted: () => leader?.uncommitted(),
    release: () => elector.release(),
  };
}
