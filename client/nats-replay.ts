/**
 * One `<prefix>.replay` request (protocol/replay.ts) as the client sends it: to an inbox of its own, with the chunks
 * checked before they are taken (numbered without a hole, shaped as the protocol says, envelopes that are envelopes),
 * and each way it can end told apart: a whole reply, a reply to ask again, or a request the server refused.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReplayChunk } from "../protocol/replay.ts";
import { envelopeProblem } from "../protocol/envelope.ts";
import { isPermissionViolation, type PublishRefusals } from "./nats-permissions.ts";
import { idleTimer } from "./idle-timer.ts";

/**
 * The server refused the request itself (`error` in its reply, other than one that says to ask again): asking the
 * same again gets the same answer.
 */
export class ReplayRefusedError extends Error {
  override name = "ReplayRefusedError";
}

/** An error reply that says the request was sound: `busy; ask again later`, `replay failed: …; ask again`. */
const TRANSIENT = /ask again( later)?$/;

export interface ReplayRequestOptions {
  nc: NatsConnection;
  /** `<prefix>.replay`. */
  subject: string;
  inboxPrefix: string;
  /** The connection's refusals to publish to `subject`: nats-core gives a request no other word of them. */
  refusals: PublishRefusals;
  payload: string;
  /** A reply that sends nothing this long is given up on. */
  silenceMs: number;
  signal: AbortSignal;
  /** Takes each chunk (and its size in bytes), in order; what it throws ends the request with that error. */
  take(chunk: ReplayChunk, bytes: number): void;
}

/** What is wrong with a chunk as the protocol defines it; undefined when nothing is. */
function chunkProblem(chunk: ReplayChunk): string | undefined {
  if (typeof chunk !== "object" || chunk === null) return "not a JSON object";
  if (typeof chunk.epoch !== "string" || !Number.isSafeInteger(chunk.seq)) return "no epoch or seq";
  if (!Array.isArray(chunk.updates)) return "no updates";
  for (const envelope of chunk.updates) {
    const problem = envelopeProblem(envelope);
    if (problem) return `an update that is not an envelope (${problem})`;
  }
  if (chunk.last && !(Number.isSafeInteger(chunk.through) && chunk.through! >= 0))
    return "a last chunk without through";
  return undefined;
}

/** The server refused the subscription to the reply inbox: no chunk could ever come. */
function inboxError(error: Error, inboxPrefix: string): Error {
  if (!isPermissionViolation(error, "subscription")) return error;
  const said = `the NATS server refused subscribing to the replay's inbox under ${inboxPrefix} (permissions)`;
  return new Error(`${said}: ${error.message}; asking again`, { cause: error });
}

/**
 * Listens to `refusals` from the publish on until the server has answered it: it answers a publish it refuses before
 * the PING that follows, and the status that tells it reaches the listener within the microtasks after, so no
 * refusal of this request comes once a turn of the event loop has passed. Another request's refusal in that window
 * (to the same subject, on the same connection) is taken too: it is denied the same, unless a reload granted it
 * just between the two, and then it is asked again.
 */
function watchRefusals(options: ReplayRequestOptions, refused: (error: Error) => void): () => void {
  const { nc, subject } = options;
  const unlisten = options.refusals.listen((error) =>
    refused(
      new Error(`the NATS server refused publishing to ${subject} (permissions): ${error.message}; asking again`, {
        cause: error,
      }),
    ),
  );
  const turn = () => setTimeout(unlisten, 0);
  nc.flush().then(turn, turn);
  return unlisten;
}

/**
 * Sends one request and feeds its chunks, in order, to `take`; rejects on silence, a lost or unreadable chunk, an
 * error reply (ReplayRefusedError when the request itself was refused), or when `signal` aborts.
 */
export function requestReplay(options: ReplayRequestOptions): Promise<void> {
  const { nc, silenceMs, signal, take } = options;
  const inbox = `${options.inboxPrefix}.${crypto.randomUUID().replaceAll("-", "")}`;
  return new Promise<void>((resolve, reject) => {
    let expected = 0;
    let unlisten = () => {};
    const silence = idleTimer(silenceMs, () =>
      finish(new Error(`no replay chunk on ${options.subject} for ${silenceMs} ms; asking again`)),
    );
    const finish = (error?: Error) => {
      silence.clear();
      unlisten();
      signal.removeEventListener("abort", onStop);
      sub.unsubscribe();
      if (error) reject(error);
      else resolve();
    };
    const onStop = () => finish(new Error("stopped"));
    const sub = nc.subscribe(inbox, {
      callback(error, msg) {
        if (error) return finish(inboxError(error, options.inboxPrefix));
        // The subject named: a prefix, or cluster, that no kubemeta publishes under gets this too, for good.
        if (msg.headers?.code === 503)
          return finish(
            new Error(
              `no responders on ${options.subject}: no kubemeta answers it ` +
                "(not connected to NATS yet, publishing under another prefix, or its NATS sink's replay.enabled false)",
            ),
          );
        let chunk: ReplayChunk;
        try {
          chunk = msg.json<ReplayChunk>();
        } catch (failure) {
          return finish(
            new Error(`unreadable replay chunk on ${options.subject}: ${String(failure)}`, { cause: failure }),
          );
        }
        if (typeof chunk?.error === "string") {
          const message = `replay refused: ${chunk.error}`;
          return finish(TRANSIENT.test(chunk.error) ? new Error(message) : new ReplayRefusedError(message));
        }
        const problem = chunkProblem(chunk);
        if (problem) return finish(new Error(`unreadable replay chunk: ${problem}; asking again`));
        if (chunk.seq !== expected) return finish(new Error(`replay chunk ${expected} was lost; asking again`));
        expected++;
        silence.touch();
        try {
          take(chunk, msg.data.length);
        } catch (failure) {
          return finish(failure instanceof Error ? failure : new Error(String(failure)));
        }
        if (chunk.last) finish();
      },
    });
    signal.addEventListener("abort", onStop, { once: true });
    silence.touch();
    nc.publish(options.subject, options.payload, { reply: inbox });
    unlisten = watchRefusals(options, finish);
  });
}
