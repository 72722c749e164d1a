/**
 * The NATS sink: publishes every committed update to `<prefix>.all` and to
 * `<prefix>.shared` or `<prefix>.node.<token>`, from a durable cursor, and answers
 * `<prefix>.replay` requests (DESIGN.md, "NATS"). NATS may go away at any time: the
 * store keeps committing, and on reconnect the sink publishes everything from its cursor.
 *
 * The publishing loop is `consume`'s (fanOut over `all`), whose `deliver` publishes on
 * whatever connection is current (nats/publisher.ts); this file keeps one connection open
 * at a time, with its replay responder.
 */
import { consume, defineSink } from "../../sdk/index.ts";
import { connectionOptions, natsSinkSchema, ownCredentials } from "./nats/options.ts";
import { checkNatsFiles } from "./nats/files.ts";
import { openConnection, type Connection } from "./nats/connection.ts";
import { Backoff, sleep, until } from "../../protocol/retry.ts";
import { causeOf, outageLog, pluginFailures } from "../../sdk/telemetry.ts";
import { ConnectionDropped, createPublisher } from "./nats/publisher.ts";
import { serveReplay, type Responder } from "./nats/replay.ts";
import { REPLAY_RESULTS } from "./nats/requests.ts";
import { defaultPrefix, hasCredentials, redactServer, subjectsFor } from "../../protocol/subjects.ts";

/** How long stop() waits for what is committed to be published, then for the client to drain. */
const DRAIN_DEADLINE_MS = 2_000;
/**
 * The first wait before subscribing again to replay requests after the server refused it (reconnect.max at most),
 * doubled at each refusal up to reconnect.max: a permission comes from an operator, not in milliseconds, and each
 * refusal is a line in the server's log.
 */
const RESUBSCRIBE_FIRST_MS = 2_000;

export default defineSink({
  type: "nats",
  description: "Publishes updates to NATS subjects per stream (all, shared, node) and answers replay requests.",
  schema: natsSinkSchema,
  example: {
    servers: ["nats://nats-0.nats:4222", "nats://nats-1.nats:4222"],
    user: "kubemeta",
    password: "${NATS_PASSWORD}",
    tls: { caFile: "/etc/nats/ca.crt" },
  },
  check: checkNatsFiles,
  create(config, ctx) {
    const prefix = config.prefix ?? defaultPrefix(ctx.cluster);
    const subjects = subjectsFor(prefix);
    const labels = { sink: ctx.name };
    const logger = ctx.logger.child({ prefix });
    // A round that fails each time it starts would say so at every backoff step: one error, then as any outage. Its end
    // is the line of the connection served at last, with downMs and failedAttempts, as after failed connects.
    const rounds = outageLog(
      logger,
      "NATS connection failed on an unexpected error; connecting again",
      "connected to NATS",
    );
    const telemetry = {
      logger,
      labels,
      connected: ctx.metrics.gauge("kubemeta_nats_connected", "1 while the sink is connected to a NATS server."),
      reconnects: ctx.metrics.counter("kubemeta_nats_reconnects_total", "Reconnections to NATS after a disconnect."),
      connectFailures: ctx.metrics.counter(
        "kubemeta_nats_connect_failures_total",
        "Failed attempts to open a NATS connection, the first or one in place of a connection that could not " +
          "reconnect (retried with backoff); reconnecting shows in kubemeta_nats_connected.",
      ),
      publishRefusals: ctx.metrics.counter(
        "kubemeta_nats_publish_refusals_total",
        "Messages the NATS server refused (a publish permission missing on their subject): lost, not retried.",
      ),
      failingAfterConnect: () => rounds.failing(),
    };
    // 0 from the start: an alert on it must fire when NATS was never reachable, not only after a disconnect; and
    // rate() of a counter needs its first sample before the first event.
    telemetry.connected.set(0, labels);
    telemetry.reconnects.inc(labels, 0);
    telemetry.connectFailures.inc(labels, 0);
    telemetry.publishRefusals.inc(labels, 0);
    const replayRequests = ctx.metrics.counter(
      "kubemeta_nats_replay_requests_total",
      `Replay requests, by result (${REPLAY_RESULTS.join(", ")}).`,
    );
    for (const result of REPLAY_RESULTS) replayRequests.inc({ ...labels, result }, 0);
    const replaySubscriptionFailures = ctx.metrics.counter(
      "kubemeta_nats_replay_subscription_failures_total",
      "Replay subscriptions the NATS server refused (a permission missing): tried again on a backoff, and at each " +
        "reconnect.",
    );
    replaySubscriptionFailures.inc(labels, 0);
    const replaySubscribed = ctx.metrics.gauge(
      "kubemeta_nats_replay_subscribed",
      "1 while the replay subscription stands; 0 while the NATS server refuses it or the connection is down " +
        "(absent with replay.enabled: false).",
    );
    // 0 from the start, as kubemeta_nats_connected: an alert on it must fire when replay never came on.
    if (config.replay.enabled) replaySubscribed.set(0, labels);
    const failed = { plugin: ctx.name, kind: "sink", phase: "run" };
    const failures = pluginFailures(ctx.metrics);
    failures.inc(failed, 0);
    const stopped = new AbortController();
    let running: Promise<void> | undefined;
    let current: Connection | undefined;
    /** Resolves when `current` is replaced by a new connection. */
    let replaced = Promise.withResolvers<void>();

    async function connected(signal: AbortSignal): Promise<Connection> {
      for (;;) {
        signal.throwIfAborted();
        const connection = current;
        const next = replaced.promise;
        if (connection && (await connection.ready(signal))) return connection;
        // No connection yet, or one closed for good: the next one is on its way.
        await until(next, Infinity, signal);
      }
    }

    const sinkCtx = { ...ctx, logger };
    const consumer = consume(sinkCtx, {
      fanOut: true,
      // Consumers get the state through a replay: publishing the whole retained log to them would repeat it.
      from: "head",
      // Past retention, consumers see the gap and reset anyway: what is left of the backlog would be wasted on them.
      behindRetention: "head",
      batch: config.batch,
      retry: config.retry,
      stallAfterMs: config.stallAfter,
      saveIntervalMs: config.cursorSaveInterval,
      // Its stop drains while connected only (a publish waits for a connection to come back): see stop below.
      drainMs: 0,
      deliver: createPublisher({ ctx: sinkCtx, subjects, connected }),
      // NATS restarting under a batch: the disconnect is a warning already, and the batch goes again once it is back.
      transient: (error) => error instanceof ConnectionDropped,
    });

    async function serve(connection: Connection): Promise<void> {
      let responder: Responder | undefined;
      try {
        // In the try: a responder that cannot start must not leave its connection open.
        responder = config.replay.enabled
          ? serveReplay({
              nc: connection.nc,
              prefix,
              subject: subjects.replay,
              queue: config.replay.queue,
              concurrency: config.replay.concurrency,
              log: ctx.log,
              logger,
              user: connection.user,
              requests: replayRequests,
              subscriptionFailures: replaySubscriptionFailures,
              subscribed: replaySubscribed,
              labels,
              resubscribe: {
                initialMs: Math.min(RESUBSCRIBE_FIRST_MS, config.reconnect.max),
                maxMs: config.reconnect.max,
              },
              ready: connection.ready,
              session: connection.session,
            })
          : undefined;
        rounds.succeeded({ server: connection.nc.getServer(), maxPayload: connection.nc.info?.max_payload });
        await until(connection.closed, Infinity, stopped.signal);
      } finally {
        await responder?.stop();
        await close(connection);
      }
    }

    async function close(connection: Connection): Promise<void> {
      const { nc } = connection;
      if (nc.isClosed()) return;
      const drained = nc.drain().then(
        () => true,
        () => false,
      );
      if ((await until(drained, Date.now() + DRAIN_DEADLINE_MS)) !== true) await nc.close().catch(() => {});
      await connection.closed;
    }

    const policy = {
      initialMs: config.reconnect.initial,
      maxMs: config.reconnect.max,
      connectTimeoutMs: config.connectTimeout,
      // Long enough for the client to have tried every server it still knows, twice at the longest delay.
      replaceAfterMs: config.servers.length > 1 ? 2 * config.reconnect.max + config.connectTimeout : undefined,
    };
    const name = config.connectionName ?? `kubemeta-${ctx.cluster}`;

    /** One connection, from its opening to its close for good; false when the sink stopped first. */
    async function round(): Promise<boolean> {
      const connection = await openConnection(
        (waitMs) => connectionOptions(config, name, waitMs),
        policy,
        telemetry,
        stopped.signal,
      );
      if (!connection) return false;
      current = connection;
      replaced.resolve();
      replaced = Promise.withResolvers<void>();
      await serve(connection);
      return true;
    }

    /**
     * Connects again and again until the sink stops. Nothing in a round throws by design: an error out of one is a
     * bug's (or a client's), and ending the loop on it would leave a sink that publishes nothing and answers no
     * replay while the host goes on as if it ran. It is logged, counted, and the next round starts after a backoff.
     */
    async function run(): Promise<void> {
      const backoff = new Backoff({ initialMs: config.reconnect.initial, maxMs: config.reconnect.max });
      while (!stopped.signal.aborted) {
        try {
          if (!(await round())) return;
          backoff.reset();
          if (!stopped.signal.aborted) logger.warn("NATS connection closed for good; connecting again");
        } catch (error) {
          failures.inc(failed);
          const delay = backoff.next();
          rounds.failed({ error, retryInMs: delay }, causeOf(error));
          await sleep(delay, stopped.signal);
        }
      }
    }

    return {
      async start() {
        if (running) return;
        await consumer.start();
        if (running || stopped.signal.aborted) return;
        logger.info("NATS sink starting", {
          servers: config.servers.map(redactServer),
          replay: config.replay.enabled ? subjects.replay : "off",
        });
        // The sink's own credentials win over a URL's: say so, or a server that wants the URL's refuses it unexplained.
        const own = ownCredentials(config);
        const withCredentials = own === undefined ? [] : config.servers.filter(hasCredentials).map(redactServer);
        if (withCredentials.length > 0)
          logger.warn(`credentials in a server URL are not used: the sink's ${own} is`, { servers: withCredentials });
        running = run();
      },
      async stop() {
        if (!stopped.signal.aborted && current?.isConnected() && !(await consumer.caughtUp(DRAIN_DEADLINE_MS))) {
          logger.warn(
            "stopping before everything committed was published; the cursor keeps the rest for the next start",
          );
        }
        // Publishing stops first, so that the batch in flight is confirmed (or abandoned) on an open connection.
        await consumer.stop();
        stopped.abort();
        await running;
      },
    };
  },
});
