/**
 * The client's watch for silence: an SSE connection's (`idleTimeoutMs`), a NATS replay's (`replayTimeoutMs`). A timer
 * that fires well after it was due says the process did not run meanwhile (stopped, a browser tab frozen, its event
 * loop held by other work): what the server sent then is waiting to be read, and giving up at once would report a
 * silence that was the client's own and drop a stream (or a reply) that was alive. Such a timer waits a moment more,
 * for that to be read, before it says the silence.
 */

/** Later than this, a timer was held up rather than merely busy. */
const LATE_MS = 100;
/** What was sent while the process did not run is read within this (kept within idleTimeoutMs). */
const GRACE_MS = 1_000;

export interface IdleTimer {
  /** Something was received (or the client is ready to read again): the silence counts from now. */
  touch(): void;
  clear(): void;
}

/** Calls `onSilent` once nothing was received for `timeoutMs` while the process could read. */
export function idleTimer(timeoutMs: number, onSilent: () => void): IdleTimer {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number, graced: boolean) => {
    clearTimeout(timer);
    const due = performance.now() + ms;
    timer = setTimeout(() => {
      if (graced || performance.now() - due <= LATE_MS) onSilent();
      else arm(Math.min(timeoutMs, GRACE_MS), true);
    }, ms);
  };
  return {
    touch: () => arm(timeoutMs, false),
    clear: () => clearTimeout(timer),
  };
}
