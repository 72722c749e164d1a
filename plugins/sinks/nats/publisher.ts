/**
 * Publishes the committed log to NATS, from the sink's durable cursor on, in order.
 *
 * Each update goes to `<prefix>.all` and then to its own stream's subject, each copy
 * with the `prev` of that stream and the header `Nats-Msg-Id: <epoch>:<version>`. The
 * id is the same on both subjects: a JetStream stream bound to all of them keeps each
 * update once (the `all` copy, published first), and one that sees a re-publication
 * after a reconnect drops it.
 *
 * A batch counts as published once a flush (a PING/PONG round trip behind it) returns on
 * the same connection generation; only then does the cursor move. After a disconnect the
 * publisher starts again from the last confirmed version, so consumers may see an update
 * twice (they drop versions they hold) but never miss one.
 */
import { errors, headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { BehindRetentionError, type SinkContext } from "../../../sdk/contract.ts";
import { Backoff, sleep } from "../../../protocol/retry.ts";
import { ALL } from "../../../protocol/streams.ts";
import { toEnvelope, type Update } from "../../../sdk/model.ts";
import { aborted, type Connection } from "./connection.ts";
import type { Subjects } from "../../../protocol/subjects.ts";

const MSG_ID_HEADER = "Nats-Msg-Id";

export interface PublisherOptions {
  ctx: SinkContext;
  subjects: Subjects;
  batchSize: number;
  cursorSaveIntervalMs: number;
}

export interface Publisher {
  /** Loads the cursor (once); a sink without one starts at the head of the log. */
  init(): Promise<void>;
  /** Publishes until the connection closes for good or `signal` aborts. */
  run(connection: Connection, signal: AbortSignal): Promise<void>;
  /** Saves the cursor if it moved since the last save. */
  saveCursor(): Promise<void>;
  /** Sets `kubemeta_sink_lag_versions`: the log's head minus the confirmed version. */
  refreshLag(): void;
  /** Resolves once everything up to `version` is confirmed, or after `timeoutMs`: true if it was. */
  reached(version: number, timeoutMs: number): Promise<boolean>;
}

export function createPublisher(options: PublisherOptions): Publisher {
  const { ctx, subjects } = options;
  const { log, logger } = ctx;
  const labels = { sink: ctx.name };
  const published = ctx.metrics.counter("kubemeta_nats_published_total", "Messages published to NATS, by sink.");
  const skipped = ctx.metrics.counter("kubemeta_nats_skipped_total", "Updates not published on a subject, by sink and reason (oversized, illegal_node_name).");
  const lag = ctx.metrics.gauge("kubemeta_sink_lag_versions", "Versions committed but not yet delivered by a sink (log head minus the sink's position).");
  const progress = new Set<() => void>();
  let confirmed = 0;
  let saved = 0;
  let lastSaveAt = 0;
  let loaded = false;

  async function init(): Promise<void> {
    if (loaded) return;
    const cursor = await ctx.cursor.load();
    confirmed = cursor === undefined ? log.head() : Math.min(cursor, log.head());
    if (cursor !== undefined && cursor > log.head()) logger.warn("cursor is ahead of the log; starting at its head", { cursor, head: log.head() });
    loaded = true;
    saved = cursor ?? -1;
    await saveCursor();
    logger.info("publishing from cursor", { cursor: confirmed, head: log.head() });
  }

  async function saveCursor(): Promise<void> {
    if (saved === confirmed) return;
    const version = confirmed;
    try {
      await ctx.cursor.save(version);
      saved = version;
      lastSaveAt = Date.now();
    } catch (error) {
      logger.error("cannot save the cursor; will retry", { error, version });
    }
  }

  function publishOne(nc: NatsConnection, subject: string, update: Update, stream: string, id: MsgHdrs): void {
    try {
      nc.publish(subject, JSON.stringify(toEnvelope(log.epoch, update, stream)), { headers: id });
      published.inc(labels);
    } catch (error) {
      if (!(error instanceof errors.InvalidArgumentError)) throw error;
      skipped.inc({ ...labels, reason: "oversized" });
      logger.error("update exceeds the server's max_payload; not published", { subject, version: update.version, kind: update.kind, name: update.name });
    }
  }

  function publishBatch(nc: NatsConnection, batch: Update[]): void {
    for (const update of batch) {
      const id = headers();
      id.set(MSG_ID_HEADER, `${log.epoch}:${update.version}`);
      publishOne(nc, subjects.all, update, ALL, id);
      if (update.stream === null) continue;
      const subject = subjects.of(update.stream);
      if (subject) publishOne(nc, subject, update, update.stream, id);
      else skipped.inc({ ...labels, reason: "illegal_node_name" });
    }
  }

  /** One connected stretch: follow the log from the confirmed version until the session ends. */
  async function session(connection: Connection, signal: AbortSignal): Promise<void> {
    const generation = connection.generation();
    const stopped = aborted(signal).then(() => {
      throw signal.reason;
    });
    stopped.catch(() => {});
    for await (const batch of log.follow({ stream: ALL, after: confirmed, batchSize: options.batchSize, signal })) {
      publishBatch(connection.nc, batch);
      await Promise.race([connection.nc.flush(), stopped]);
      if (connection.generation() !== generation) return;
      confirmed = batch[batch.length - 1]!.version;
      refreshLag();
      for (const notify of progress) notify();
      if (Date.now() - lastSaveAt >= options.cursorSaveIntervalMs) await saveCursor();
    }
  }

  function refreshLag(): void {
    lag.set(log.head() - confirmed, labels);
  }

  async function reached(version: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (confirmed < version) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const { promise, resolve } = Promise.withResolvers<void>();
      progress.add(resolve);
      const timer = setTimeout(resolve, left);
      await promise;
      clearTimeout(timer);
      progress.delete(resolve);
    }
    return true;
  }

  return {
    init,
    saveCursor,
    refreshLag,
    reached,
    async run(connection, signal) {
      const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 });
      while (!signal.aborted && (await connection.ready(signal))) {
        const current = AbortSignal.any([signal, connection.session()]);
        try {
          await session(connection, current);
          backoff.reset();
        } catch (error) {
          if (error instanceof BehindRetentionError) {
            logger.warn("cursor fell behind retention; publishing from the head (consumers see a gap and reset)", { cursor: confirmed, oldest: error.oldest });
            confirmed = log.head();
          } else if (!current.aborted) {
            const delay = backoff.next();
            logger.warn("publishing failed; starting again from the cursor", { error, cursor: confirmed, retryInMs: delay });
            await sleep(delay, current);
          }
        }
      }
    },
  };
}
