/**
 * The replay protocol on `<prefix>.replay` (NATS request/reply), as consumers see it.
 *
 * Request (JSON): `{"stream": "node/<name>" | "shared" | "all", "from"?: "<epoch>:<version>", "to"?: <version>}`
 * - `from` is the requester's position: the last version of the stream it holds (exclusive).
 *   Absent or null: it holds nothing, and gets a reset. Unknown keys are ignored.
 * - `to` (inclusive) bounds the replay, e.g. the `prev` of the message that revealed a gap, a version as in `from`
 *   (at most 15 digits);
 *   absent or null, the replay runs up to the head of the log at the time of the request.
 *
 * Reply: one or more chunks to the request's reply subject, each a JSON object
 * `{epoch, seq, updates, reset?, oversized?, last?, through?, error?}` under the server's
 * max_payload. `seq` counts from 0: a hole means a chunk was lost, so ask again.
 * - Replay: `updates` are the stream's envelopes after `from`, in order, prev chain intact.
 * - Reset (no `from`, `from` of another epoch, older than retention or ahead of the log):
 *   chunk 0 has `reset: "<reason>"`; the requester drops its state for the stream and
 *   takes the `updates` that follow as the stream's current state (`ADDED` envelopes,
 *   `prev` 0, `version` that of the update that produced each object).
 * - The final chunk has `last: true` and `through`: the requester now holds the stream up
 *   to that version (its new position, which may be above the last envelope's version).
 * - `oversized`: versions left out because one envelope alone, in a chunk, would exceed max_payload (skipped live
 *   too, so that every consumer holds the same objects).
 * - A request over MAX_REQUEST_BYTES, or a malformed one, gets one chunk `{error, last: true}`; an error ending in
 *   "ask again" (busy, a failure while answering) means the request was sound, any other that asking it again gets
 *   the same answer.
 * - A request whose reply subject is not an inbox (none, under the prefix, a `$` server subject, a wildcard) gets
 *   nothing.
 *
 * Gap rule for consumers: holding position `p`, a message with `version <= p` is a
 * duplicate (drop it); one with `prev <= p` applies (`p = version`); one with `prev > p`
 * reveals a gap: replay `from` p `to` prev. (After a reset `p` is `through`, a version of
 * the whole log, so a stream's next `prev` may be below it: hence `<=`, not `===`.)
 */
import * as v from "valibot";
import { isStreamName, STREAM_NAME_RULE } from "./streams.ts";
import { MAX_VERSION, parsePosition, type Position } from "./position.ts";
import type { Envelope } from "./envelope.ts";

export type ResetReason = "no-resume-point" | "other-epoch" | "behind-retention" | "ahead-of-log";

export interface ReplayChunk {
  epoch: string;
  seq: number;
  updates: Envelope[];
  reset?: ResetReason;
  oversized?: number[];
  last?: true;
  through?: number;
  error?: string;
}

/** What a request is, for one that is no JSON object (an array, null, a number, a string). */
const NOT_AN_OBJECT = 'request must be a JSON object: {"stream": …, "from"?: …, "to"?: …}';

// The object's own message is only ever that of a missing `stream` (parseReplayRequest refuses anything but an object
// first): valibot's own, `Invalid key: Expected "stream" but received undefined`, says neither what nor where.
const requestSchema = v.object(
  {
    stream: v.pipe(v.string("stream must be a string"), v.check(isStreamName, `stream must be ${STREAM_NAME_RULE}`)),
    from: v.optional(
      v.nullable(
        v.pipe(
          v.string("from must be a string"),
          v.check((text) => parsePosition(text) !== undefined, 'from must be "<epoch>:<version>"'),
        ),
      ),
    ),
    to: v.optional(
      v.nullable(
        v.pipe(
          v.number("to must be a number"),
          v.integer("to must be an integer"),
          v.minValue(0, "to must be >= 0"),
          v.maxValue(MAX_VERSION, `to must be at most ${MAX_VERSION} (15 digits, as a version)`),
        ),
      ),
    ),
  },
  `stream is missing: it must be ${STREAM_NAME_RULE}`,
);

/** A request as a consumer sends it (JSON). */
export interface ReplayRequestMessage {
  stream: string;
  /** `<epoch>:<version>` of the last update held; absent or null when nothing is held. */
  from?: string | null;
  /** The last version wanted; absent or null: up to the head. */
  to?: number | null;
}

/**
 * The most a request may weigh: a sound one is well under 1 KiB (a node stream's name, an epoch and a version), and a
 * larger one is answered with an error before it is decoded, parsed or queued.
 */
export const MAX_REQUEST_BYTES = 16 * 1024;

/** A request as the responder reads it. */
export interface ReplayRequest {
  stream: string;
  /** Undefined: the requester holds nothing. */
  from?: Position;
  to?: number;
}

export class MalformedRequestError extends Error {
  override name = "MalformedRequestError";
}

/** Parses a request payload; throws MalformedRequestError saying what is wrong. */
export function parseReplayRequest(payload: string): ReplayRequest {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    throw new MalformedRequestError("request is not JSON");
  }
  // An array passes valibot's object schema (its keys are its indexes): it is no request either.
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new MalformedRequestError(NOT_AN_OBJECT);
  const result = v.safeParse(requestSchema, json);
  if (!result.success) throw new MalformedRequestError(result.issues.map((i) => i.message).join("; "));
  const { stream, from } = result.output;
  // null, as encoders write an unset optional field, is absent.
  const to = result.output.to ?? undefined;
  const request: ReplayRequest = { stream, to };
  // A `to` before `from` is refused by the responder once `from` is known to be of its log: after a new epoch the
  // versions start over, and a consumer's `to` (the prev that showed the gap) is often below its old `from`.
  if (from) request.from = parsePosition(from);
  return request;
}
