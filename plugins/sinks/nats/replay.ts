/**
 * Answers `<prefix>.replay` requests (protocol in protocol/replay.ts) in a queue group,
 * a few at a time. Nothing a requester sends can stop it: a malformed request gets an
 * error reply and is counted, a failure while answering ends that reply with an error, a
 * reply subject kubemeta will not publish to (replies.ts) gets nothing and is counted.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { BehindRetentionError, type CommittedLog } from "../../../sdk/contract.ts";
import { type Counter, type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import { ALL } from "../../../protocol/streams.ts";
import { envelopeJson, snapshotEnvelopeJson, type Update } from "../../../sdk/model.ts";
import { reachVersion } from "../../../sdk/resume.ts";
import { ChunkWriter } from "./chunks.ts";
import { refusedReply } from "./replies.ts";
import {
  MalformedRequestError,
  parseReplayRequest,
  type ReplayRequest,
  type ResetReason,
} from "../../../protocol/replay.ts";

/** The results `kubemeta_nats_replay_requests_total` counts requests by. */
export const REPLAY_RESULTS = ["replay", "reset", "malformed", "refused", "failed", "busy", "unsynced"] as const;
type ReplayResult = (typeof REPLAY_RESULTS)[number];

export interface ResponderOptions {
  nc: NatsConnection;
  /** The sink's subject prefix: no reply goes under it. */
  prefix: string;
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
/**
 * Objects of a reset read from the store at a time: an answer holds one page, never the
 * stream's whole state, so `concurrency` bounds the memory of a flood of resets.
 */
const SNAPSHOT_PAGE = 500;
/**
 * A flush (a round trip to the server) after this many bytes, and at the end of each reply,
 * keeps the client's outbound buffer bounded: the client buffers what the socket has not
 * taken yet, and a reply is done only once the server has it, whoever reads it. One flush is
 * awaited only when the next one starts, so the next bytes are read and packed meanwhile
 * rather than after the round trip (a fifth of a replay's time when it waited): at most about
 * twice this many bytes are buffered.
 */
const FLUSH_EVERY_BYTES = 1 << 20;
const DEFAULT_MAX_PAYLOAD = 1 << 20;
/** Requests waiting for this replica's log to reach their `from` (sdk/resume.ts), past which they are answered now. */
const MAX_PARKED = 1_000;

/** A request with a reply subject kubemeta publishes to (refusedReply said nothing against it). */
type Answerable = Msg & { reply: string };

/** A request waiting for a slot, with what it asks for takeAlike (undefined when malformed: answered in its turn). */
interface Waiting {
  msg: Answerable;
  request: ReplayRequest | undefined;
}

function parsedOrUndefined(msg: Msg): ReplayRequest | undefined {
  try {
    return parseReplayRequest(msg.string());
  } catch {
    return undefined;
  }
}

export function serveReplay(options: ResponderOptions): Responder {
  const { nc, log, logger, requests, labels } = options;
  let waiting: Waiting[] = [];
  const answering = new Set<Promise<void>>();
  let stopping = false;
  const stopped = new AbortController();
  let parked = 0;
  const warn = rateLimitedWarn(logger);
  /** A new store's first sync is over (CommittedLog.whole): until then a state sent would be partial. */
  let whole = false;
  void log.whole().then(() => {
    whole = true;
  });

  function count(result: ReplayResult, requesters = 1): void {
    requests.inc({ ...labels, result }, requesters);
  }

  /** Sends each chunk to every reply subject: requesters answered together get the same chunks. */
  function writerFor(replies: string[]): ChunkWriter {
    let unflushed = 0;
    let flushing: Promise<void> = Promise.resolve();
    const encoder = new TextEncoder();
    return new ChunkWriter(log.epoch, nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD, async (chunk, last) => {
      const payload = encoder.encode(chunk);
      for (const reply of replies) {
        nc.publish(reply, payload);
        unflushed += payload.length;
        if (unflushed >= FLUSH_EVERY_BYTES) {
          unflushed = 0;
          await flushing;
          flushing = nc.flush();
          // Its failure is thrown where it is awaited, with the next flush or at the end.
          flushing.catch(() => {});
        }
      }
      if (last) {
        await flushing;
        if (unflushed > 0) {
          unflushed = 0;
          await nc.flush();
        }
      }
    });
  }

  /**
   * Takes the waiting requests that the same reply answers: resets of `stream` for the same
   * reason. A flood of resets (agents after a wiped store, or a hostile client) then costs one
   * read of the state, not one per request. One scan of the queue per reset answered.
   */
  function takeAlike(stream: string, reason: ResetReason): Waiting[] {
    const taken: Waiting[] = [];
    waiting = waiting.filter((entry) => {
      if (entry.request?.stream !== stream || resetReason(entry.request) !== reason) return true;
      taken.push(entry);
      return false;
    });
    return taken;
  }

  /**
   * A reader found behind retention is logged and counted by the log (`kubemeta_reader_resets_total`), as every
   * reader it finds there: asking it for what is after the request's position tells it.
   */
  async function noteBehind(request: ReplayRequest): Promise<void> {
    const after = request.from!.version;
    await log.read({ stream: request.stream, after, to: after, limit: 1 }).catch((error: unknown) => {
      if (!(error instanceof BehindRetentionError)) throw error;
    });
  }

  /**
   * Why the request gets the stream's state, told from what the log knows without a read, so that every waiting
   * request for the same state can be answered with it (takeAlike). Behind retention as the log knows it; a prune
   * the log has not heard of yet shows as a failed read in sendUpdates.
   */
  function resetReason(request: ReplayRequest): ResetReason | undefined {
    if (!request.from) return "no-resume-point";
    if (request.from.epoch !== log.epoch) return "other-epoch";
    if (request.from.version > log.head()) return "ahead-of-log";
    if (request.from.version < log.horizon(request.stream)) return "behind-retention";
    return undefined;
  }

  async function sendState(
    request: ReplayRequest,
    reason: ResetReason,
    writer: ChunkWriter,
    requesters = 1,
  ): Promise<void> {
    writer.markReset(reason);
    const time = new Date().toISOString();
    let version = 0;
    for await (const page of log.snapshotPages(
      request.stream === ALL ? {} : { stream: request.stream },
      SNAPSHOT_PAGE,
    )) {
      version = page.version;
      for (const object of page.objects) {
        const sending = writer.add(snapshotEnvelopeJson(log.epoch, request.stream, object, time), object.version);
        if (sending) await sending;
      }
    }
    await writer.finish(version);
    count("reset", requesters);
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
      for (const update of page) {
        const sending = writer.add(envelopeJson(log.epoch, update, stream), update.version);
        if (sending) await sending;
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.version;
    }
    await writer.finish(through);
    count("replay");
  }

  /** `parsed`: the request as the callback read it; undefined when malformed (parsed again here for its error). */
  async function answer(msg: Answerable, parsed: ReplayRequest | undefined): Promise<void> {
    let replies = [msg.reply];
    let writer = writerFor(replies);
    try {
      const request = parsed ?? parseReplayRequest(msg.string());
      const reason = resetReason(request);
      if (reason && !whole) {
        count("unsynced");
        await writer.fail("the store's first sync is under way; ask again later");
      } else if (reason) {
        const alike = takeAlike(request.stream, reason);
        replies = [msg.reply, ...alike.map((entry) => entry.msg.reply)];
        if (reason === "behind-retention")
          for (const behind of [request, ...alike.map((entry) => entry.request!)]) await noteBehind(behind);
        writer = writerFor(replies);
        await sendState(request, reason, writer, replies.length);
      } else await sendUpdates(request, request.from!.version, writer);
    } catch (error) {
      const malformed = error instanceof MalformedRequestError;
      count(malformed ? "malformed" : "failed", replies.length);
      if (malformed) warn("malformed replay request", { error, payload: msg.string().slice(0, 200) });
      else logger.error("replay failed", { error });
      await writer
        .fail(malformed ? (error as Error).message : `replay failed: ${(error as Error).message}; ask again`)
        .catch(() => {});
    }
  }

  function begin(msg: Answerable, request: ReplayRequest | undefined): void {
    const done: Promise<void> = answer(msg, request).finally(() => {
      answering.delete(done);
      const next = waiting.shift();
      if (next) begin(next.msg, next.request);
    });
    answering.add(done);
  }

  const subscription: Subscription = nc.subscribe(options.subject, {
    queue: options.queue,
    callback(error, msg) {
      if (error) return logger.warn("replay subscription error", { error });
      if (stopping) return;
      const refused = refusedReply(msg.reply, options.prefix);
      if (refused) {
        count("refused");
        return warn("replay request refused, not answered", { reason: refused, reply: msg.reply?.slice(0, 200) });
      }
      const request = msg as Answerable;
      const parsed = parsedOrUndefined(msg);
      const from = parsed?.from;
      // A position this replica has yet to read (another replica further on gave it) is waited for a moment, outside
      // the slots: no request holds one while the log catches up. A `to` past the head is not: the reply ends at the
      // head, and the requester asks again from there.
      if (from?.epoch === log.epoch && from.version > log.head() && parked < MAX_PARKED) {
        parked++;
        void reachVersion(log, from.version, stopped.signal)
          .catch(() => {})
          .then(() => {
            parked--;
            if (!stopping) admit(request, parsed);
          });
        return;
      }
      admit(request, parsed);
    },
  });

  function admit(msg: Answerable, request: ReplayRequest | undefined): void {
    if (answering.size < options.concurrency) begin(msg, request);
    else if (waiting.length < MAX_WAITING) waiting.push({ msg, request });
    else busy(msg);
  }

  function busy(msg: Answerable): void {
    count("busy");
    void writerFor([msg.reply])
      .fail("busy; ask again later")
      .catch(() => {});
  }

  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      stopped.abort();
      waiting = [];
      subscription.unsubscribe();
      await Promise.allSettled([...answering]);
    },
  };
}
