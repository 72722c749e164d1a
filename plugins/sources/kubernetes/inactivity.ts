/**
 * The inactivity timeout of a request: a watchdog that cuts one no byte has arrived for (a half-open connection), and
 * a watch's bookmark cadence, which shortens the timeout once observed.
 */

/** No byte arrived for the inactivity timeout. */
export class InactivityError extends Error {
  constructor(timeoutMs: number) {
    super(`no data from the API server for ${Math.round(timeoutMs)} ms`);
    this.name = "InactivityError";
  }
}

/** The inactivity timeout never adapts below this: a few seconds of jitter or of a busy event loop are no stall. */
const MIN_ADAPTIVE_TIMEOUT_MS = 5_000;
/** A watchdog check this late means the event loop, not the connection, stood still. */
const LOOP_LAG_MS = 1_000;
/** How many of its longest bookmark interval a watch may stay silent before it counts as stalled. */
const CADENCE_FACTOR = 3;

/**
 * The bookmark cadence of one watch. Bookmarks are the server's heartbeat: they come at a
 * steady interval (about a minute on kube-apiserver, seconds on some), so a watch silent
 * for several intervals is stalled, however long the configured timeout. Events are not
 * a heartbeat: a busy resource that turns quiet would look stalled if their gaps counted.
 */
export class BookmarkCadence {
  private last: number | undefined;
  private longestGap = 0;
  private gaps = 0;

  /** A periodic bookmark arrived (not the initial-events-end one, whose timing is the list's). */
  beat(): void {
    const now = performance.now();
    if (this.last !== undefined) {
      this.longestGap = Math.max(this.longestGap, now - this.last);
      this.gaps++;
    }
    this.last = now;
  }

  /**
   * The timeout the cadence calls for, capped by `maxMs`. Two intervals are needed first:
   * the first one seen may be cut short by the watch's start or a server-side extra bookmark.
   */
  timeoutMs(maxMs: number): number {
    if (this.gaps < 2) return maxMs;
    return Math.min(maxMs, Math.max(MIN_ADAPTIVE_TIMEOUT_MS, CADENCE_FACTOR * this.longestGap));
  }
}

/**
 * Fires when no byte has arrived for `timeoutMs()` outside pauses. One timer that re-arms
 * itself from the time of the last byte, rather than a timer reset on every chunk; it is
 * moved earlier only when the timeout shrinks (a watch's cadence was learned).
 */
export function startWatchdog(timeoutMs: () => number, onTimeout: (firedAfterMs: number) => void) {
  let lastActivity = performance.now();
  let paused = false;
  let timer: Timer | undefined;
  let dueAt = 0;
  const arm = (delayMs: number) => {
    clearTimeout(timer);
    dueAt = performance.now() + delayMs;
    timer = setTimeout(check, delayMs);
  };
  const state = {
    firedAfterMs: undefined as number | undefined,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      lastActivity = performance.now();
      const deadline = lastActivity + timeoutMs();
      if (deadline < dueAt) arm(deadline - lastActivity);
    },
    stop() {
      clearTimeout(timer);
    },
  };
  function check() {
    // This late, the event loop was blocked (a long sync, GC), not the server silent: bytes that
    // came meanwhile wait unread in the socket. Look again once the reads have run.
    if (performance.now() - dueAt > LOOP_LAG_MS) return arm(LOOP_LAG_MS);
    const limit = timeoutMs();
    const idle = performance.now() - lastActivity;
    if (paused || idle < limit) return arm(paused ? limit : limit - idle);
    state.firedAfterMs = limit;
    onTimeout(limit);
  }
  arm(timeoutMs());
  return state;
}
