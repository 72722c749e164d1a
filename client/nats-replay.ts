/**
 * One `<prefix>.replay` request (protocol/replay.ts) as the client sends it: to an inbox of its own, with the chunks
 * checked before they are taken (numbered without a hole, shaped as the protocol says, envelopes that are envelopes),
 * and each way it can end told apart: a whole reply, a reply to ask again, or a request the server refused.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReplayChunk } from "../protocol/replay.ts";
import { envelopeProblem } from "../protocol/envelope.ts";

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
  payload: string;
  /** A reply that sends nothing this long is given up on. */
  silenceMs: number;
  signal: AbortSignal;
  /** Takes each chunk, in order; what it throws ends the request with that error. */
  take(chunk: ReplayChunk): void;
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

/**
 * Sends one request and feeds its chunks, in order, to `take`; rejects on silence, a lost or unreadable chunk, an
 * error reply (ReplayRefusedError when the request itself was refused), or when `signal` aborts.
 */
export function requestReplay(options: ReplayRequestOptions): Promise<void> {
  const { nc, silenceMs, signal, take } = options;
  const inbox = `${options.inboxPrefix}.${crypto.randomUUID().replaceAll("-", "")}`;
  return new Promise<void>((resolve, reject) => {
    let expected = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (error?: Error) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onStop);
      sub.unsubscribe();
      if (error) reject(error);
      else resolve();
    };
    const onStop = () => finish(new Error("stopped"));
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`no replay chunk for ${silenceMs} ms; asking again`)), silenceMs);
    };
    const sub = nc.subscribe(inbox, {
      callback(error, msg) {
        if (error) return finish(error);
        if (msg.headers?.code === 503)
          return finish(new Error("no responders on the replay subject: kubemeta is not connected to NATS"));
        let chunk: ReplayChunk;
        try {
          chunk = msg.json<ReplayChunk>();
        } catch (failure) {
          return finish(new Error("unreadable replay chunk", { cause: failure }));
        }
        if (typeof chunk?.error === "string") {
          const message = `replay refused: ${chunk.error}`;
          return finish(TRANSIENT.test(chunk.error) ? new Error(message) : new ReplayRefusedError(message));
        }
        const problem = chunkProblem(chunk);
        if (problem) return finish(new Error(`unreadable replay chunk: ${problem}; asking again`));
        if (chunk.seq !== expected) return finish(new Error(`replay chunk ${expected} was lost; asking again`));
        expected++;
        arm();
        try {
          take(chunk);
        } catch (failure) {
          return finish(failure instanceof Error ? failure : new Error(String(failure)));
        }
        if (chunk.last) finish();
      },
    });
    signal.addEventListener("abort", onStop, { once: true });
    arm();
    nc.publish(options.subject, options.payload, { reply: inbox });
  });
}
