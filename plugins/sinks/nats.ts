/**
 * The NATS sink: publishes every committed update to `<prefix>.all` and to
 * `<prefix>.shared` or `<prefix>.node.<token>`, from a durable cursor, and answers
 * `<prefix>.replay` requests (DESIGN.md, "NATS"). NATS may go away at any time: the
 * store keeps committing, and on reconnect the sink publishes everything from its cursor.
 */
import { defineSink } from "../../sdk/contract.ts";
import { connectionOptions, natsSinkSchema } from "./nats/options.ts";
import { openConnection, type Connection } from "./nats/connection.ts";
import { createPublisher } from "./nats/publisher.ts";
import { serveReplay, type Responder } from "./nats/replay.ts";
import { defaultPrefix, subjectsFor } from "../../protocol/subjects.ts";

/** How often the lag gauge follows the head of the log while nothing is published. */
const LAG_REFRESH_MS = 1_000;
/** How long stop() waits for what is committed to be published, then for the client to drain. */
const DRAIN_DEADLINE_MS = 2_000;

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
  create(config, ctx) {
    const prefix = config.prefix ?? defaultPrefix(ctx.cluster);
    const subjects = subjectsFor(prefix);
    const labels = { sink: ctx.name };
    const logger = ctx.logger.child({ prefix });
    const publisher = createPublisher({ ctx: { ...ctx, logger }, subjects, batchSize: config.batchSize, cursorSaveIntervalMs: config.cursorSaveInterval });
    const telemetry = {
      logger,
      labels,
      connected: ctx.metrics.gauge("kubemeta_nats_connected", "1 while the sink is connected to a NATS server."),
      reconnects: ctx.metrics.counter("kubemeta_nats_reconnects_total", "Reconnections to NATS after a disconnect."),
      connectFailures: ctx.metrics.counter("kubemeta_nats_connect_failures_total", "Failed attempts to open a NATS connection (retried with backoff)."),
    };
    const replayRequests = ctx.metrics.counter("kubemeta_nats_replay_requests_total", "Replay requests, by result (replay, reset, malformed, failed, busy).");
    const stopped = new AbortController();
    let running: Promise<void> | undefined;
    let lagTimer: Timer | undefined;
    let current: Connection | undefined;

    async function serve(connection: Connection): Promise<void> {
      const responder: Responder | undefined = config.replay.enabled
        ? serveReplay({ nc: connection.nc, subject: subjects.replay, queue: config.replay.queue, concurrency: config.replay.concurrency, log: ctx.log, logger, requests: replayRequests, labels })
        : undefined;
      try {
        await publisher.run(connection, stopped.signal);
      } finally {
        await responder?.stop();
        await publisher.saveCursor();
        await close(connection);
      }
    }

    async function close(connection: Connection): Promise<void> {
      const { nc } = connection;
      if (nc.isClosed()) return;
      let timer: Timer | undefined;
      const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, DRAIN_DEADLINE_MS, false)));
      const drained = await Promise.race([nc.drain().then(() => true, () => false), deadline]).finally(() => clearTimeout(timer));
      if (!drained) await nc.close().catch(() => {});
      await connection.closed;
    }

    async function run(): Promise<void> {
      const backoff = { initialMs: config.reconnect.initial, maxMs: config.reconnect.max };
      const name = config.connectionName ?? `kubemeta-${ctx.cluster}`;
      while (!stopped.signal.aborted) {
        const connection = await openConnection((waitMs) => connectionOptions(config, name, waitMs), backoff, telemetry, stopped.signal);
        if (!connection) break;
        current = connection;
        await serve(connection);
        if (!stopped.signal.aborted) logger.warn("NATS connection closed for good; connecting again");
      }
    }

    return {
      async start() {
        if (running) return;
        await publisher.init();
        if (running || stopped.signal.aborted) return;
        logger.info("NATS sink starting", { servers: config.servers, replay: config.replay.enabled ? subjects.replay : "off" });
        publisher.refreshLag();
        lagTimer = setInterval(publisher.refreshLag, LAG_REFRESH_MS);
        running = run().catch((error: unknown) => logger.error("NATS sink stopped on an error", { error }));
      },
      async stop() {
        if (current?.isConnected() && !stopped.signal.aborted && !(await publisher.reached(ctx.log.head(), DRAIN_DEADLINE_MS))) {
          logger.warn("stopping before everything committed was published; the cursor keeps the rest for the next start");
        }
        stopped.abort();
        clearInterval(lagTimer);
        await running;
      },
    };
  },
});
