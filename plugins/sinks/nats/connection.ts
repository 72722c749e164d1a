/**
 * One NATS connection at a time, forever: connect with backoff until it works, let the
 * client reconnect (without limit, with growing delays) when it drops, and start over
 * when the client gives up for good (it does after repeated auth failures).
 *
 * The client drops from its pool every server that failed its first connection: started
 * while one of two servers was down, it would never fail over to that one once it is back.
 * With several servers, a connection that cannot reconnect for `replaceAfterMs` is closed,
 * and the next one tries every configured server again.
 *
 * What the publisher needs to know is exposed as a "session": it ends at each disconnect,
 * and a flush that spans a disconnect proves nothing about what was published before it
 * (bytes written to the dead socket are lost while the flush may succeed after the
 * reconnect), hence the generation counter.
 */
import { type NatsConnection, type NodeConnectionOptions, PermissionViolationError } from "@nats-io/transport-node";
import { Backoff, sleep, TIMED_OUT, timerDelay, until } from "../../../protocol/retry.ts";
import { connect } from "./connect.ts";
import { causeOf, outageLog, rateLimitedWarn, type Logger } from "../../../sdk/telemetry.ts";
import type { Gauge, Counter } from "../../../sdk/telemetry.ts";
import { PERMISSIONS_README } from "./permissions.ts";

export interface ConnectionTelemetry {
  logger: Logger;
  connected: Gauge;
  reconnects: Counter;
  /** Connection attempts that failed before the client had a connection to keep alive. */
  connectFailures: Counter;
  /** `kubemeta_nats_publish_refusals_total`: each message the server refused, as the client reports it. */
  publishRefusals: Counter;
  labels: Record<string, string>;
  /**
   * True while each connection the sink opens fails again (an error out of its round, nats.ts): then a connection's
   * opening is a debug line, not one at info per attempt, and the sink says when one is served at last.
   */
  failingAfterConnect?: () => boolean;
}

/** What one connection is opened with. */
export interface ConnectionOptions {
  client: NodeConnectionOptions;
  /** The NATS user `client` authenticates as, when known (natsUser): named in the line of a permission it lacks. */
  user?: string;
}

export interface Connection {
  readonly nc: NatsConnection;
  /** ConnectionOptions' user: the same for the connection's whole life, its reconnects included. */
  readonly user?: string;
  /** True while connected (false while reconnecting and once closed). */
  isConnected(): boolean;
  /** Grows at each disconnect. */
  generation(): number;
  /** Resolves true once connected (at once when it is), false when closed for good or aborted. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** Aborts at the next disconnect (or close). */
  session(): AbortSignal;
  /** Resolves when the client has closed for good. */
  readonly closed: Promise<void>;
}

export interface ConnectPolicy {
  /** Delays between attempts, exponential with jitter, from `initialMs` to `maxMs`. */
  initialMs: number;
  maxMs: number;
  /** The client's handshake deadline (its `timeout` option), from which an attempt's own deadline is reckoned. */
  connectTimeoutMs: number;
  /** Closes a connection that has not reconnected for this long (undefined: never), so that a new one starts. */
  replaceAfterMs?: number;
}

/**
 * How long past the client's own handshake deadline an attempt may take. The client's deadline covers only the
 * socket and the handshake: reading the credential files comes before it (only regular files are read, so a FIFO
 * cannot block it, but a file system that stops answering, an NFS server gone, still can), and nothing else bounds
 * an attempt.
 */
const ATTEMPT_GRACE_MS = 1_000;

/**
 * Connects, retrying with backoff until it works; undefined when `signal` aborts first.
 * `options` is called before every attempt: it reads credential files and is handed the
 * reconnect delay of the connection it will make. An attempt that has not settled after
 * twice `connectTimeoutMs` and ATTEMPT_GRACE_MS counts as failed, and the next one starts.
 */
export async function openConnection(
  options: (reconnectWaitMs: () => number) => Promise<ConnectionOptions>,
  policy: ConnectPolicy,
  telemetry: ConnectionTelemetry,
  signal: AbortSignal,
): Promise<Connection | undefined> {
  const { logger } = telemetry;
  // NATS away for an hour is an attempt at every backoff step (reconnect.max apart at most): a line each would flood
  // the log. The line of the connection made at last is the outage's end, with downMs and failedAttempts.
  const outage = outageLog(logger, "cannot connect to NATS; retrying", "connected to NATS", { first: "warn" });
  const backoffOptions = { initialMs: policy.initialMs, maxMs: policy.maxMs };
  const backoff = new Backoff(backoffOptions);
  const attemptDeadlineMs = 2 * policy.connectTimeoutMs + ATTEMPT_GRACE_MS;
  while (!signal.aborted) {
    const reconnect = new Backoff(backoffOptions);
    let reconnectWait = backoffOptions.initialMs;
    try {
      const attempt = options(() => reconnectWait).then(async ({ client, user }) => ({
        nc: await connect(client),
        user,
      }));
      const opened = await until(attempt, Date.now() + attemptDeadlineMs, signal);
      if (opened === TIMED_OUT) {
        // Nobody else holds the attempt: a connection it makes late is closed, or it would live on unused.
        attempt.then((late) => late.nc.close()).catch(() => {});
        if (signal.aborted) return undefined;
        throw new Error(
          `the connection attempt had not settled after ${attemptDeadlineMs} ms ` +
            `(connectTimeout ${policy.connectTimeoutMs} ms); given up`,
        );
      }
      const connection = watch(opened.nc, opened.user, telemetry, {
        attempting: () => (reconnectWait = reconnect.next()),
        succeeded: () => reconnect.reset(),
        replaceAfterMs: policy.replaceAfterMs,
      });
      const connected = { server: opened.nc.getServer(), maxPayload: opened.nc.info?.max_payload };
      // While rounds fail, the sink says so once this connection is served (nats.ts): the end of failed connects too
      // is a debug line here, or one recovery would be two info lines.
      const level = telemetry.failingAfterConnect?.() ? "debug" : "info";
      if (!outage.succeeded(connected, level)) logger[level]("connected to NATS", connected);
      return connection;
    } catch (error) {
      telemetry.connectFailures.inc(telemetry.labels);
      const delay = backoff.next();
      outage.failed({ error, retryInMs: delay }, causeOf(error));
      await sleep(delay, signal);
    }
  }
  return undefined;
}

function watch(
  nc: NatsConnection,
  user: string | undefined,
  telemetry: ConnectionTelemetry,
  reconnect: { attempting(): void; succeeded(): void; replaceAfterMs?: number },
): Connection {
  const { logger, labels } = telemetry;
  let generation = 0;
  let isConnected = true;
  let session = new AbortController();
  let waiters = Promise.withResolvers<boolean>();
  let replaceTimer: ReturnType<typeof setTimeout> | undefined;
  const replaceAfterMs = reconnect.replaceAfterMs;
  function replaceIfStuck(): void {
    if (replaceAfterMs === undefined || replaceTimer) return;
    replaceTimer = setTimeout(() => {
      logger.warn("no NATS server took the connection back; connecting afresh to every configured server", {
        disconnectedForMs: replaceAfterMs,
      });
      nc.close().catch(() => {});
    }, timerDelay(replaceAfterMs));
  }
  telemetry.connected.set(1, labels);

  // The server says so of every message it refuses (a publish permission missing on one subject): once a minute.
  const serverSaid = rateLimitedWarn(logger);
  /**
   * A refused publish is lost, not retried, and so is every other one to its subject while the permission is missing:
   * a line of its own, once a minute, apart from the server's other errors, saying what to grant to whom, and where.
   * The sink subscribes to `<prefix>.replay` alone, and replay-subscription.ts says so of each refusal of that.
   */
  function refused(error: PermissionViolationError): void {
    if (error.operation !== "publish") return;
    telemetry.publishRefusals.inc(labels);
    const msg = `the NATS server refused a publish: kubemeta's NATS user may not publish there (${PERMISSIONS_README})`;
    serverSaid(msg, { subject: error.subject, user, error });
  }
  const closed = (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          generation++;
          isConnected = false;
          session.abort();
          telemetry.connected.set(0, labels);
          logger.warn("disconnected from NATS; reconnecting", { server: status.server });
          replaceIfStuck();
          break;
        case "reconnecting":
          reconnect.attempting();
          break;
        case "reconnect":
          clearTimeout(replaceTimer);
          replaceTimer = undefined;
          isConnected = true;
          session = new AbortController();
          reconnect.succeeded();
          telemetry.connected.set(1, labels);
          telemetry.reconnects.inc(labels);
          logger.info("reconnected to NATS", { server: status.server });
          waiters.resolve(true);
          waiters = Promise.withResolvers<boolean>();
          break;
        case "error":
          if (status.error instanceof PermissionViolationError) refused(status.error);
          else serverSaid("NATS: error", { error: status.error });
          break;
        case "slowConsumer":
        case "ldm":
          serverSaid(`NATS: ${status.type}`, { server: "server" in status ? status.server : undefined });
          break;
      }
    }
    await nc.closed();
  })().finally(() => {
    clearTimeout(replaceTimer);
    isConnected = false;
    session.abort();
    telemetry.connected.set(0, labels);
    waiters.resolve(false);
  });

  return {
    nc,
    user,
    closed,
    isConnected: () => isConnected,
    generation: () => generation,
    session: () => session.signal,
    async ready(signal) {
      if (isConnected) return true;
      if (nc.isClosed()) return false;
      // until() takes its listener off `signal` again: the sink's stop signal outlives every disconnect.
      const outcome = await until(waiters.promise, Infinity, signal);
      return outcome !== TIMED_OUT && outcome;
    },
  };
}
