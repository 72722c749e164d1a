/**
 * A shutdown bounded by `shutdownTimeout`: its steps run in order (host/host.ts); past the deadline, what they did not
 * finish is logged (what was left uncommitted, else what the stop still waited for) and ShutdownTimedOut thrown, so
 * that the process exits 1 with the cause said.
 */
import type { Uncommitted } from "../core/commit-queue.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import type { ShutdownWaits } from "./shutdown-waits.ts";

/** The shutdown did not finish within shutdownTimeout: what was not committed is logged, the process exits 1. */
export class ShutdownTimedOut extends Error {
  constructor(timeoutMs: number) {
    super(`shutdown did not finish within ${timeoutMs} ms`);
    this.name = "ShutdownTimedOut";
  }
}

/** How long a shutdown out of time still gives the Lease's release (one API call, retried once on a conflict). */
const RELEASE_ON_TIMEOUT_MS = 2_000;

export interface ShutdownOptions {
  timeoutMs: number;
  deadline: number;
  waits: ShutdownWaits;
  /** What the term (led or followed) has not committed, if any. */
  uncommitted(): Uncommitted | undefined;
  /** With `ha`: gives up the Lease. */
  release?: () => Promise<void>;
  logger: Logger;
}

/** Waits for `steps` up to the deadline; past it, logs what they left and throws ShutdownTimedOut. */
export async function shutDownWithin(steps: Promise<void>, options: ShutdownOptions): Promise<void> {
  // A store that keeps failing holds the pending commit, and every step after it, for as long as it fails.
  if ((await until(steps, options.deadline)) !== TIMED_OUT) return;
  const { updates, resumePoints } = options.uncommitted() ?? { updates: 0, resumePoints: [] };
  const pending = updates > 0 || resumePoints.length > 0;
  const waitingFor = options.waits.describe();
  // Exit 1 all the same: what did not finish (a sink's cursor save) has its cost too, said here.
  const left = pending
    ? "exiting without committing what is pending"
    : `nothing was left uncommitted, but it still waited for ${waitingFor.join("; ")}`;
  // A standby takes over now rather than once the Lease expires; what this term still commits is fenced then.
  if (options.release) await until(options.release(), Date.now() + RELEASE_ON_TIMEOUT_MS);
  options.logger.error(`shutdown timed out; ${left}`, {
    timeoutMs: options.timeoutMs,
    uncommittedUpdates: updates,
    uncommittedResumePoints: resumePoints,
    waitingFor,
  });
  // The steps go on in the background (main.ts exits at once); they log how they end, nothing more.
  steps.catch((error) => options.logger.debug("shutdown steps failed after the timeout", { error }));
  throw new ShutdownTimedOut(options.timeoutMs);
}
