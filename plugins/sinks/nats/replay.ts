/**
 * Answers `<prefix>.replay` requests (protocol in core/replay-protocol.ts) in a queue group,
 * a few at a time. Nothing a requester sends can stop it: a malformed request gets an
 * error reply and is counted, a failure while answering ends that reply with an error.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { BehindRetentionError, type CommittedLog } from "../../../sdk/contract.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import type { Counter } from "../../../sdk/telemetry.ts";
import { ALL } from "../../../protocol/streams.ts";
import { snapshotEnvelope, toEnvelope, type Update } from "../../../sdk/model.ts";
import { ChunkWriter } from "./chunks.ts";
import {
  MalformedRequestError,
  parseReplayRequest,
  type ReplayRequest,
  type ResetReason,
} from "../../../protocol/replay.ts";

export interface ResponderOptions {
  nc: NatsConnection;
  subject: string;
  queue: string;
  concurrency: number;
  log: CommittedLog;
  logger: Logger;
  /** `kubemeta_nats_replay_requests_total`, by result. */
  requests: Counter;
  labels: Record<string, string>;
}

export interface Responder {
  /** Stops taking requests and waits for those being answered. */
  stop(): Promise<void>;
}

/** Requests waiting for a free slot; beyond this, a requester is told to come back. */
const MAX_WAITING = 10_000;
/** Updates read from the log at a time. */
const PAGE = 2_000;
/** A flush (a round trip to the server) after this many bytes keeps the client's buffer bounded. */
const FLUSH_EVERY_BYTES = 4 << 20;
const DEFAULT_MAX_PAYLOAD = 1 << 20;

export function serveReplay(options: ResponderOptions): Responder {
  const { nc, log, logger, requests, labels } = options;
  const waiting: Msg[] = [];
  const answering = new Set<Promise<void>>();
  let stopping = false;

  function count(result: string): void {
    requests.inc({ ...labels, result });
  }

  function writerFor(reply: string): ChunkWriter {
    let unflushed = 0;
    return new ChunkWriter(log.epoch, nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD, async (chunk) => {
      nc.publish(reply, chunk);
      unflushed += chunk.length;
      if (unflushed >= FLUSH_EVERY_BYTES) {
        unflushed = 0;
        await nc.flush();
      }
    });
  }

  function resetReason(request: ReplayRequest): ResetReason | undefined {
    if (!request.from) return "no-resume-point";
    if (request.from.epoch !== log.epoch) return "other-epoch";
    if (request.from.version > log.head()) return "ahead-of-log";
    return undefined;
  }

  async function sendState(request: ReplayRequest, reason: ResetReason, writer: ChunkWriter): Promise<void> {
    writer.markReset(reason);
    const { version, objects } = await log.snapshot(request.stream === ALL ? {} : { stream: request.stream });
    const time = new Date().toISOString();
    for (const object of objects)
      await writer.add(JSON.stringify(snapshotEnvelope(log.epoch, request.stream, object, time)), object.version);
    await writer.finish(version);
    count("reset");
  }

  async function sendUpdates(request: ReplayRequest, from: number, writer: ChunkWriter): Promise<void> {
    const { stream } = request;
    const through = Math.min(request.to ?? log.head(), log.head());
    let after = from;
    for (;;) {
      let page: Update[];
      try {
        page = await log.read({ stream, after, to: through, limit: PAGE });
      } catch (error) {
        if (error instanceof BehindRetentionError && after === from)
          return sendState(request, "behind-retention", writer);
        throw error;
      }
      for (const update of page)
        await writer.add(JSON.stringify(toEnvelope(log.epoch, update, stream)), update.version);
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.version;
    }
    await writer.finish(through);
    count("replay");
  }

  async function answer(msg: Msg): Promise<void> {
    if (!msg.reply) {
      count("malformed");
      logger.warn("replay request without a reply subject; ignored");
      return;
    }
    const writer = writerFor(msg.reply);
    try {
      const request = parseReplayRequest(msg.string());
      const reason = resetReason(request);
      if (reason) await sendState(request, reason, writer);
      else await sendUpdates(request, request.from!.version, writer);
    } catch (error) {
      const malformed = error instanceof MalformedRequestError;
      count(malformed ? "malformed" : "failed");
      if (malformed) logger.warn("malformed replay request", { error, payload: msg.string().slice(0, 200) });
      else logger.error("replay failed", { error });
      await writer
        .fail(malformed ? (error as Error).message : `replay failed: ${(error as Error).message}; ask again`)
        .catch(() => {});
    }
  }

  function begin(msg: Msg): void {
    const done: Promise<void> = answer(msg).finally(() => {
      answering.delete(done);
      const next = waiting.shift();
      if (next) begin(next);
    });
    answering.add(done);
  }

  const subscription: Subscription = nc.subscribe(options.subject, {
    queue: options.queue,
    callback(error, msg) {
      if (error) return logger.warn("replay subscription error", { error });
      if (stopping) return;
      if (answering.size < options.concurrency) return begin(msg);
      if (waiting.length < MAX_WAITING) return void waiting.push(msg);
      count("busy");
      if (msg.reply)
        void writerFor(msg.reply)
          .fail("busy; ask again later")
          .catch(() => {});
    },
  });

  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      waiting.length = 0;
      subscription.unsubscribe();
      await Promise.allSettled([...answering]);
    },
  };
}
