/**
 * A replay request as the responder reads it once, at its arrival, and keeps it while it waits (replay.ts), and the
 * results it is counted by.
 */
import type { Msg } from "@nats-io/transport-node";
import { MalformedRequestError, parseReplayRequest, type ReplayRequest } from "../../../protocol/replay.ts";

/**
 * The results `kubemeta_nats_replay_requests_total` counts requests by: `stopped` for those the sink's stop told to
 * ask again (a rolling update), whether they waited or were being answered, apart from `failed`.
 */
export const REPLAY_RESULTS = [
  "replay",
  "reset",
  "malformed",
  "refused",
  "failed",
  "busy",
  "unsynced",
  "stopped",
] as const;
export type ReplayResult = (typeof REPLAY_RESULTS)[number];

/**
 * A request as it waits for its turn: its reply subject and what it asks, not its message, whose payload (up to
 * MAX_REQUEST_BYTES, 10,000 waiting) the queue would otherwise hold.
 */
export interface Pending {
  reply: string;
  /** What it asks; why it is malformed for one that is (answered in its turn, as any other). */
  request: ReplayRequest | MalformedRequestError;
  /** The start of a malformed request's payload, for its log line. */
  excerpt?: string;
}

/** Reads a request whose reply subject kubemeta publishes to (refusedReply said nothing against it). */
export function pendingOf(msg: Msg, reply: string): Pending {
  const payload = msg.string();
  try {
    return { reply, request: parseReplayRequest(payload) };
  } catch (error) {
    if (!(error instanceof MalformedRequestError)) throw error;
    return { reply, request: error, excerpt: payload.slice(0, 200) };
  }
}

export const sound = (request: Pending["request"]): request is ReplayRequest =>
  !(request instanceof MalformedRequestError);
