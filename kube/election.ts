/**
 * Leader election on a Lease, with the semantics of client-go's tools/leaderelection, so that replicas of kubemeta
 * agree on one leader the way Kubernetes' own controllers do:
 * - a contender tries every retryPeriod (jittered) and takes the Lease when it is unheld, held by itself, or
 *   expired. Expired is judged by the local clock only: leaseDurationSeconds after the moment this replica last
 *   saw the Lease change, never by comparing its renewTime with our clock (clocks of replicas disagree);
 * - the leader renews every retryPeriod, and stops leading when it finds the Lease held by someone else, or when
 *   no renewal succeeded for renewDeadline (shorter than the lease duration, so it stops before anyone may take
 *   over);
 * - every write carries the resourceVersion last read: of two contenders, the API server lets one win (409 for
 *   the other, who reads again); leaseTransitions counts the changes of holder;
 * - stopping releases the Lease as client-go's ReleaseOnCancel does (holder emptied, duration 1 s), so a standby
 *   takes over at its next try instead of after the lease duration.
 */
import { sleep } from "../protocol/retry.ts";
import { type Counter, type Logger, outageLog } from "../sdk/telemetry.ts";
import { createLeaseClient, isConflict, type Lease, type LeaseSpec } from "./lease.ts";
import { type Attempt, createLeaseTries, linked } from "./lease-tries.ts";
import { causeOfRequest, loggedError } from "./status.ts";
import { errorText } from "../protocol/error-text.ts";
import type { KubeTransport } from "./transport.ts";

export interface ElectorOptions {
  transport: KubeTransport;
  namespace: string;
  name: string;
  identity: string;
  /** Written to the Lease in whole seconds, rounded up. */
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  /** `kubemeta_ha_lease_requests_total`: the Lease's requests, `{verb, code}` (lease.ts). */
  requests: Counter;
}

/** What replicas that must agree put on the Lease they hold, for the others to compare (host/ha-agreement.ts). */
export interface LeaseAnnotations {
  /** Set on the Lease with each write as its holder (of `spec`), beside the annotations it has. */
  own(spec: LeaseSpec): Record<string, string>;
  /** Each Lease seen: read from the API server, or as this replica wrote it. */
  seen(lease: Lease): void;
}

export interface Elector {
  /**
   * Resolves once this replica holds the Lease, with a signal that aborts when it stops holding it (lost, or
   * released). Rejects (AbortError) if `signal` aborts first; `signal` has no say once the Lease is held. Called
   * while leading, resolves with the current term's signal.
   */
  acquire(signal: AbortSignal): Promise<AbortSignal>;
  /** True while held. */
  readonly leading: boolean;
  /**
   * True while held and renewed (a write sent) within renewDeadline, by the monotonic clock: false at once after a
   * pause past it (SIGSTOP, a stalled VM), before the renewal loop's timers have run and aborted the term's signal.
   */
  holds(): boolean;
  /**
   * Stops renewing and releases the Lease if held (the term's signal aborts first), or stops an acquire() under
   * way; safe twice and without acquire. acquire() may be called again afterwards.
   */
  release(): Promise<void>;
  /** Annotations to write as the holder and the Leases seen to tell of, from now on. */
  annotate(annotations: LeaseAnnotations): void;
}

/** client-go's JitterFactor: a contender waits retryPeriod × [1, 2.2) between tries. */
const JITTER_FACTOR = 1.2;

function abortError(signal: AbortSignal): DOMException {
  const reason: unknown = signal.reason;
  return reason instanceof DOMException && reason.name === "AbortError"
    ? reason
    : new DOMException("stopped before acquiring the Lease", "AbortError");
}

export function createElector(options: ElectorOptions): Elector {
  const { identity, leaseDurationMs, renewDeadlineMs, retryPeriodMs, logger } = options;
  // client-go's checks: the leader must give up before a standby may take over, and retry within the deadline.
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > JITTER_FACTOR * retryPeriodMs && retryPeriodMs > 0)) {
    throw new Error(
      `leader election needs leaseDuration > renewDeadline > ${JITTER_FACTOR} × retryPeriod > 0 ` +
        `(got ${leaseDurationMs} ms, ${renewDeadlineMs} ms, ${retryPeriodMs} ms)`,
    );
  }
  const client = createLeaseClient(options.transport, options.namespace, options.name, options.requests);
  const lease = createLeaseTries({
    client,
    identity,
    leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
    renewDeadlineMs,
    logger,
  });
  let leading = false;
  /** Aborts when this replica stops leading. */
  let term: AbortController | undefined;
  let acquiring = false;
  /** Ends the loop under way (acquiring or renewing). */
  let stop: AbortController | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let releasing: Promise<void> | undefined;

  /**
   * The log of one run of failures, a term's renewals or a contention's tries, each its own: what fails once a term
   * is lost (a token revoked: 401) is news, not a repeat of the renewals' failure. Both retry every retryPeriod.
   */
  function failures(msg: string, recovered: string) {
    const log = outageLog(logger, msg, recovered, { first: "warn" });
    return {
      failed: (error: unknown) =>
        log.failed({ error: loggedError(error), lease: client.describe }, causeOfRequest(error)),
      succeeded: () => log.succeeded({ lease: client.describe }),
    };
  }

  async function renew(halt: AbortSignal, leadership: AbortController): Promise<void> {
    const renewals = failures("cannot renew the Lease", "renewed the Lease after retrying");
    let lost: string | undefined;
    while (lost === undefined) {
      await sleep(retryPeriodMs, halt);
      if (halt.aborted) return;
      // One renewal: tries every retryPeriod until one succeeds or renewDeadline has passed.
      const deadline = linked([halt], renewDeadlineMs);
      let attempt: Attempt;
      for (;;) {
        attempt = await lease.tryAcquireOrRenew(deadline.signal, true);
        if (attempt.ok || "holder" in attempt || deadline.signal.aborted) break;
        renewals.failed(attempt.error);
        await sleep(retryPeriodMs, deadline.signal);
        if (deadline.signal.aborted) break;
      }
      deadline.dispose();
      if (halt.aborted) return;
      if (attempt.ok) renewals.succeeded();
      else if ("holder" in attempt) lost = `the Lease is held by ${attempt.holder ? `"${attempt.holder}"` : "nobody"}`;
      else lost = `no renewal succeeded for ${renewDeadlineMs} ms: ${errorText(attempt.error)}`;
    }
    leading = false;
    logger.warn("lost the Lease; no longer leading", { lease: client.describe, reason: lost });
    leadership.abort(new Error(`lost the Lease: ${lost}`));
    // As client-go after a failed renewal: if the Lease still names us, hand it over rather than let it expire.
    await lease.release();
  }

  async function contend(signal: AbortSignal, halt: AbortSignal): Promise<AbortSignal> {
    const abandon = linked([signal, halt]);
    try {
      logger.info("trying to acquire the Lease", { lease: client.describe });
      const tries = failures("cannot acquire the Lease", "reached the Lease after retrying");
      let holder: string | undefined;
      for (;;) {
        if (abandon.signal.aborted) throw abortError(abandon.signal);
        // Bounded as a renewal is: a request that hears nothing (a connection black-holed by a load balancer's
        // failover) would otherwise hold this contender for Bun's fetch timeout, minutes in which a dead leader's
        // Lease expires and nobody takes it.
        const attemptSignal = linked([abandon.signal], renewDeadlineMs);
        const attempt = await lease.tryAcquireOrRenew(attemptSignal.signal, false).finally(attemptSignal.dispose);
        // A try the API server answered (a 409 included) ends a run of failures; one given up as we stop does not.
        if (attempt.ok || "holder" in attempt || isConflict(attempt.error)) tries.succeeded();
        if (attempt.ok) break;
        if (!("holder" in attempt)) {
          // A 409 is the race being decided: someone else wrote first; the next try reads who.
          if (isConflict(attempt.error))
            logger.debug("another replica wrote the Lease first", { lease: client.describe });
          else if (!abandon.signal.aborted) tries.failed(attempt.error);
        } else if (attempt.holder !== holder) {
          holder = attempt.holder;
          logger.info("the Lease is held by another replica", { lease: client.describe, holder });
        }
        await sleep(retryPeriodMs * (1 + Math.random() * JITTER_FACTOR), abandon.signal);
      }
      if (abandon.signal.aborted) {
        // Won just as we were told to stop: hand it straight back.
        await lease.release();
        throw abortError(abandon.signal);
      }
    } finally {
      abandon.dispose();
    }
    leading = true;
    const leadership = new AbortController();
    const { leaseTransitions, acquireTime } = lease.lease!.spec;
    logger.info("acquired the Lease; leading", { lease: client.describe, leaseTransitions, acquireTime });
    term = leadership;
    running = renew(halt, leadership);
    return leadership.signal;
  }

  return {
    get leading() {
      return leading;
    },
    holds: () => leading && performance.now() - lease.wroteAt < renewDeadlineMs,
    async acquire(signal) {
      if (leading && term) return term.signal;
      if (acquiring) throw new Error("acquire() is already under way");
      acquiring = true;
      try {
        // A loss or a release may still be handing the Lease back.
        await releasing;
        await running;
        stop = new AbortController();
        const contending = contend(signal, stop.signal);
        running = contending.catch(() => {});
        return await contending;
      } finally {
        acquiring = false;
      }
    },
    annotate(given) {
      lease.annotate(given);
    },
    release() {
      releasing ??= (async () => {
        stop?.abort();
        await running;
        if (leading) {
          leading = false;
          term?.abort(new Error("released the Lease"));
        }
        await lease.release();
      })().finally(() => {
        releasing = undefined;
      });
      return releasing;
    },
  };
}
