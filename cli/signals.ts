/**
 * SIGTERM, SIGINT and SIGHUP (the terminal it ran in closed), listened for from the first line main.ts runs.
 * Loading kubemeta's modules takes most of a second on a busy machine, and a signal in that time would end the
 * process as signals do by default (exit 143), instead of stopping it (exit 0).
 */
export interface EarlySignals {
  /** Resolves at the first of them: serving (the demo, tail) stops then. */
  readonly stop: Promise<void>;
  /** For commands that do not stop gracefully: signals act as they do by default again, at once if one came. */
  release(): void;
}

const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

export function listenEarly(): EarlySignals {
  let received: NodeJS.Signals | undefined;
  const stopped = Promise.withResolvers<void>();
  const onSignal = (signal: NodeJS.Signals) => {
    received = signal;
    stopped.resolve();
  };
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  return {
    stop: stopped.promise,
    release() {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      if (received) process.kill(process.pid, received);
    },
  };
}
