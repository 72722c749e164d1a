/**
 * Isolation for plugins: one plugin's failure is logged, counted and retried, and never
 * crashes the host or holds up anything but itself.
 *
 * - A create or start that throws, or a start that has not finished by a deadline (then stopped and created
 *   again), is retried with backoff in the background; a stop that hangs is given up on after the deadline.
 * - A sink's delivery is isolated by `consume` (sdk/consume.ts): a batch that fails is
 *   retried, one held too long is reported, and each sink reads the log on its own.
 * - `guardProcess` keeps an exception thrown from a plugin's timer from ending the process.
 */
import type { Lifecycle } from "../sdk/contract.ts";
import { Backoff, sleep, TIMED_OUT, until } from "../protocol/retry.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { causeOf, outageLog, pluginFailures, rateLimited, type LogFields, type Metrics } from "../sdk/telemetry.ts";

/** How long a plugin's start, stop or (at --check, host/check-config.ts) check may take before the host moves on. */
export const PLUGIN_DEADLINE_MS = 10_000;

export interface SuperviseOptions {
  name: string;
  kind: "source" | "sink";
  logger: Logger;
  metrics: Metrics;
  /** How long start or stop may take before the host moves on (default PLUGIN_DEADLINE_MS). */
  deadlineMs?: number;
  /** Called once the plugin has started, after however many attempts. */
  started?: () => void;
}

/**
 * Supervises a plugin's lifecycle, from its creation (`create`, the declaration's factory with its config and
 * context; `retired` is that instance's own, aborted once the host is done with it: its create failed, or its stop is
 * over or given up on). `start` creates and starts the plugin, retrying with backoff until it works, in the
 * background, and returns once the first attempt is over, which the deadline bounds: a plugin that cannot be created
 * or started, or whose start hangs, holds up neither the host nor the other plugins. `stop` is bounded by the deadline
 * too. Failures and hangs are logged and counted (`kubemeta_plugin_failures_total{plugin, kind,
 * phase="start"|"stop"}`), never thrown.
 */
export function supervise(create: (retired: AbortSignal) => Lifecycle, options: SuperviseOptions): Lifecycle {
  const { name, kind, logger } = options;
  const deadlineMs = options.deadlineMs ?? PLUGIN_DEADLINE_MS;
  const failures = pluginFailures(options.metrics);
  const stopped = new AbortController();
  let starting: Promise<void> | undefined;
  /** Once created: a plugin whose factory threw (a config it refuses) is created again at the next attempt. */
  let inner: Instance | undefined;
  /** The stop of an instance whose start did not finish in time: the host's stop waits for it too. */
  let retiring: Promise<void> = Promise.resolve();
  // A start that hangs whose stop hangs too does so at every attempt: one error, then one a minute at most. The
  // host's own stop always says it: what held up the shutdown.
  const sayRetired = rateLimited(logger, "error");

  function startUntilItWorks(): Promise<void> {
    const firstAttempt = Promise.withResolvers<void>();
    // A plugin whose backend is away for an hour is an attempt at every backoff step (a minute apart at most): one
    // error, one per new cause, then a warning a minute, and one line once it starts, with how long it took.
    const outage = outageLog(logger, `${kind} failed to start; retrying`, `${kind} started after retrying`);
    void (async () => {
      const backoff = new Backoff({ initialMs: 500, maxMs: 60_000 });
      while (!stopped.signal.aborted) {
        let stuck: Instance | undefined;
        try {
          inner ??= instance();
          const plugin = inner;
          // A start that never settles would leave the plugin down for good: it is a failed start, retried afresh.
          const started = await until((async () => plugin.plugin.start())(), Date.now() + deadlineMs, stopped.signal);
          if (stopped.signal.aborted) break;
          if (started !== TIMED_OUT) {
            outage.succeeded();
            options.started?.();
            break;
          }
          // Forgotten before its stop: the host's stop, and the next attempt, must not reach this instance again.
          stuck = plugin;
          inner = undefined;
          throw new Error(`its start did not finish within ${deadlineMs} ms; stopped, to be created again`);
        } catch (error) {
          failures.inc({ plugin: name, kind, phase: "start" });
          const delay = backoff.next();
          outage.failed({ error, retryInMs: delay }, causeOf(error), "error");
          firstAttempt.resolve();
          if (stuck) {
            retiring = stopWithin(stuck, sayRetired);
            await retiring;
          }
          await sleep(delay, stopped.signal);
        }
      }
      firstAttempt.resolve();
    })();
    return firstAttempt.promise;
  }

  function instance(): Instance {
    const retired = new AbortController();
    try {
      return { plugin: created(create(retired.signal), kind), retired };
    } catch (error) {
      // What its factory left running (a timer handed its context) must not act beside the next instance.
      retired.abort();
      throw error;
    }
  }

  /**
   * Stops one instance within the deadline, then retires it; a failure or a hang is said (`say`: an error), counted,
   * not thrown.
   */
  async function stopWithin(
    { plugin, retired }: Instance,
    say = (msg: string, fields: LogFields) => logger.error(msg, fields),
  ): Promise<void> {
    try {
      // A synchronous throw counts as a failure to stop too.
      if ((await until((async () => plugin.stop())(), Date.now() + deadlineMs)) === TIMED_OUT) {
        failures.inc({ plugin: name, kind, phase: "stop" });
        say(`${kind} did not stop in time; abandoning it`, { deadlineMs });
      }
    } catch (error) {
      failures.inc({ plugin: name, kind, phase: "stop" });
      say(`${kind} failed to stop`, { error });
    } finally {
      retired.abort();
    }
  }

  return {
    async start() {
      // Each attempt is bounded by the deadline: the first one is over by then, whatever the plugin does.
      starting ??= startUntilItWorks();
      await starting;
    },
    async stop() {
      stopped.abort();
      const plugin = inner;
      await Promise.all([retiring, plugin && stopWithin(plugin)]);
    },
  };
}

/** A plugin as created, with the signal its create was handed. */
interface Instance {
  plugin: Lifecycle;
  retired: AbortController;
}

/**
 * What a plugin's `create` returned, once it is a plugin: anything else (the Promise of an `async create`, nothing) is
 * said as the start's failure and not kept, so that the next attempt creates again and the stop calls nothing that is
 * not there.
 */
function created(made: Lifecycle, kind: string): Lifecycle {
  if (made instanceof Promise) {
    // The plugin's own failure in it would be nobody's: an unhandled rejection.
    made.catch(() => {});
    const rule = "create returns { start, stop } at once (what takes time: in start)";
    throw new Error(`its create returned a Promise, not the ${kind}: ${rule}`);
  }
  const { start, stop } = (made ?? {}) as Partial<Lifecycle>;
  if (typeof start === "function" && typeof stop === "function") return made;
  const what = made === null || typeof made !== "object" ? String(made) : "an object without start and stop";
  throw new Error(`its create returned ${what}, not the ${kind}: create returns { start, stop }`);
}

/**
 * Logs and counts what escapes every plugin's handlers instead of letting it end the
 * process: under Bun an exception thrown from a timer callback exits the process, and an
 * unhandled rejection makes it exit non-zero later. For the server process only (main.ts):
 * in tests it would hide failures. Returns a function that removes the guard.
 */
export function guardProcess(logger: Logger, metrics: Metrics): () => void {
  const escaped = metrics.counter(
    "kubemeta_unhandled_errors_total",
    "Errors no handler caught (logged, then ignored), by type.",
  );
  for (const type of ["exception", "rejection"]) escaped.inc({ type }, 0);
  const onException = (error: unknown) => {
    escaped.inc({ type: "exception" });
    logger.error("uncaught exception; kubemeta keeps running", { error });
  };
  const onRejection = (error: unknown) => {
    escaped.inc({ type: "rejection" });
    logger.error("unhandled promise rejection; kubemeta keeps running", { error });
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
