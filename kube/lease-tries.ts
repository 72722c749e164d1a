/**
 * The election's requests for its Lease (election.ts): one try to acquire or renew it, the release, and the Lease as
 * this replica last saw it and when its spec last changed, by which another's Lease is judged expired (the local
 * clock only, never its renewTime).
 */
import type { Logger } from "../sdk/telemetry.ts";
import { isConflict, type Lease, type LeaseClient, type LeaseSpec, microTime } from "./lease.ts";
import { loggedError } from "./status.ts";
import type { LeaseAnnotations } from "./election.ts";

/** The Lease as this replica last saw it, and when (performance.now()) its spec last changed. */
interface Observed {
  lease: Lease;
  spec: string;
  at: number;
}

/** One try: done; or the Lease is another's (holder, "" for nobody, when renewing); or a request failed. */
export type Attempt = { ok: true } | { ok: false; holder: string } | { ok: false; error: unknown };

export interface LeaseTriesOptions {
  client: LeaseClient;
  identity: string;
  leaseDurationSeconds: number;
  /** A release gives up after it. */
  renewDeadlineMs: number;
  logger: Logger;
}

export interface LeaseTries {
  /** client-go's tryAcquireOrRenew, except that a leader that finds another holder stops without writing. */
  tryAcquireOrRenew(signal: AbortSignal, renewing: boolean): Promise<Attempt>;
  /** Hands the Lease over if it names this replica (client-go's release). */
  release(): Promise<void>;
  /** The Lease as last read or written. */
  readonly lease: Lease | undefined;
  /** When the last write that succeeded was sent (performance.now()): the Lease was ours from then on. */
  readonly wroteAt: number;
  /** Annotations to write as the holder and the Leases seen to tell of, from now on. */
  annotate(annotations: LeaseAnnotations): void;
}

export function createLeaseTries(options: LeaseTriesOptions): LeaseTries {
  const { client, identity, leaseDurationSeconds, renewDeadlineMs, logger } = options;
  let observed: Observed | undefined;
  let wroteAt = Number.NEGATIVE_INFINITY;
  let annotations: LeaseAnnotations | undefined;

  const heldBySelf = () => observed?.lease.spec.holderIdentity === identity;
  const holderOf = (lease: Lease) => lease.spec.holderIdentity ?? "";
  const unexpired = () =>
    observed !== undefined && performance.now() < observed.at + (observed.lease.spec.leaseDurationSeconds ?? 0) * 1000;

  /** Our own writes always count as a change (client-go's setObservedRecord); a read only when the spec differs. */
  function observe(lease: Lease, wrote: boolean): void {
    const spec = JSON.stringify(lease.spec);
    observed = wrote || spec !== observed?.spec ? { lease, spec, at: performance.now() } : { ...observed, lease };
    annotations?.seen(lease);
  }

  async function tryAcquireOrRenew(signal: AbortSignal, renewing: boolean): Promise<Attempt> {
    const sentAt = performance.now();
    const written = (): Attempt => {
      wroteAt = sentAt;
      return { ok: true };
    };
    const now = microTime();
    const ours: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now };
    // The leader's fast path: renew from the version it wrote last, without reading first.
    if (renewing && observed && heldBySelf() && unexpired()) {
      const { acquireTime, leaseTransitions } = observed.lease.spec;
      try {
        const spec = { ...ours, acquireTime, leaseTransitions };
        observe(await client.update(observed.lease, spec, signal, annotations?.own(spec)), true);
        return written();
      } catch (error) {
        if (signal.aborted) return { ok: false, error };
        logger.debug("cannot renew the Lease from the version last written; reading it", { error: loggedError(error) });
      }
    }
    try {
      const current = await client.get(signal);
      if (!current) {
        const spec = { ...ours, leaseTransitions: 0 };
        observe(await client.create(spec, signal, annotations?.own(spec)), true);
        return written();
      }
      observe(current, false);
      const holder = holderOf(current);
      // A leader that sees another name (even none) was not the holder all along: its term is over.
      if (renewing && holder !== identity) return { ok: false, holder };
      if (holder !== "" && holder !== identity && unexpired()) return { ok: false, holder };
      const transitions = current.spec.leaseTransitions ?? 0;
      const spec =
        holder === identity
          ? { ...ours, acquireTime: current.spec.acquireTime, leaseTransitions: transitions }
          : { ...ours, leaseTransitions: transitions + 1 };
      observe(await client.update(current, spec, signal, annotations?.own(spec)), true);
      return written();
    } catch (error) {
      return { ok: false, error };
    }
  }

  /**
   * client-go's release(): holder emptied, duration 1 s, transitions kept. A 409 is read again and retried once
   * if the Lease still names us: a renewal aborted on its way may have landed after all.
   */
  async function releaseLease(): Promise<void> {
    // Its own timer, not AbortSignal.timeout: the error then says `no answer in … ms`, as a renewal's does.
    const deadline = linked([], renewDeadlineMs);
    const { signal } = deadline;
    try {
      await releaseWithin(signal);
    } finally {
      deadline.dispose();
    }
  }

  async function releaseWithin(signal: AbortSignal): Promise<void> {
    for (let tries = 0; observed && heldBySelf() && tries < 2; tries++) {
      const now = microTime();
      const { leaseTransitions } = observed.lease.spec;
      const spec = { holderIdentity: "", leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions };
      try {
        observe(await client.update(observed.lease, spec, signal), true);
        logger.info("released the Lease", { lease: client.describe });
        return;
      } catch (error) {
        if (!isConflict(error) || tries > 0) {
          logger.warn("cannot release the Lease; a standby takes it over once it expires", {
            error: loggedError(error),
          });
          return;
        }
        const current = await client.get(signal).catch(() => undefined);
        if (!current) return;
        observe(current, false);
      }
    }
  }

  return {
    tryAcquireOrRenew,
    release: releaseLease,
    get lease() {
      return observed?.lease;
    },
    get wroteAt() {
      return wroteAt;
    },
    annotate(given) {
      annotations = given;
    },
  };
}

/** A signal that aborts with any of `parents` or after `timeoutMs`; dispose() lets go of them and of the timer. */
export function linked(parents: AbortSignal[], timeoutMs?: number): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const listeners = parents.map((parent) => {
    const onAbort = () => controller.abort(parent.reason);
    if (parent.aborted) onAbort();
    else parent.addEventListener("abort", onAbort, { once: true });
    return () => parent.removeEventListener("abort", onAbort);
  });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new DOMException(`no answer in ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      for (const remove of listeners) remove();
    },
  };
}
