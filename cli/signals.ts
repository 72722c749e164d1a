/**
 * SIGTERM and SIGINT, listened for from the first line main.ts runs. Loading kubemeta's modules takes most of a second
 * on a busy machine, and a signal in that time would end the process as signals do by default (exit 143), instead of
 * stopping it (exit 0).
 */
export interface EarlySignals {
  /** Resolves at the first SIGTERM or SIGINT: serving (and the demo) stops then. */
  readonly stop: Promise<void>;
  /**
   * For commands that do not stop gracefully: signals act as they do by default again, at once if one came. Bun runs
   * a signal's listener when its event loop turns, which it did not while modules loaded: one that came then is still
   * to run, and once listeners are removed Bun drops it. The loop turns once first.
   */
  release(): Promise<void>;
  /**
   * Calls `listener` at every SIGTERM or SIGINT after the first, at once for those that came before it was given (while
   * kubemeta loaded). They change nothing: the shutdown under way goes on (within shutdownTimeout), rather than the
   * process ending as a second signal would by default, mid-drain.
   */
  onRepeat(listener: (signal: NodeJS.Signals) => void): void;
}

export function listenEarly(): EarlySignals {
  let received: NodeJS.Signals | undefined;
  /** Repeats that came before a listener, handed to it once there is one. */
  const early: NodeJS.Signals[] = [];
  let repeated = (signal: NodeJS.Signals): void => {
    early.push(signal);
  };
  const stopped = Promise.withResolvers<void>();
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) return repeated(signal);
    received = signal;
    stopped.resolve();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return {
    stop: stopped.promise,
    async release() {
      await new Promise((resolve) => setImmediate(resolve));
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      if (received) process.kill(process.pid, received);
    },
    onRepeat(listener) {
      repeated = listener;
      for (const signal of early.splice(0)) listener(signal);
    },
  };
}
