/**
 * WAL checkpoints off the event loop. Left to SQLite, the committing connection copies
 * the WAL into the database file (and fsyncs it) inside a commit: measured here, most of
 * the cost of a commit during churn, and stalls of hundreds of milliseconds. A worker
 * thread does it instead, with PASSIVE checkpoints that block neither writer nor readers.
 *
 * Under constant commits a PASSIVE checkpoint never catches up with the last frame, so
 * the WAL never restarts and would grow. Before a commit, the store calls `bound()`: when
 * the WAL holds more than `restartBytes` of frames (as the last checkpoint counted them),
 * or its file has grown past twice that (the count is up to a checkpoint interval old),
 * the worker runs a RESTART checkpoint while the store holds its commits back (awaiting,
 * so the event loop stays free), and the next commit writes the WAL from its start again.
 * Restarted, not truncated: a truncated WAL grows again into fresh page-cache pages, which
 * the kernel allocates and zeroes on every write (a sixth of the writer thread's CPU in an
 * initial sync, bench/RESULTS.md), where a restarted one rewrites the pages it has.
 */
import { statSync } from "node:fs";
import type { Logger } from "../../../sdk/telemetry.ts";

/**
 * How often the worker checkpoints. Each PASSIVE checkpoint copies the pages written since the last one, so the hot
 * pages (index interiors, meta) are copied once per checkpoint: at 50 ms the checkpointer took 1.4–1.6 s of CPU during
 * an initial sync of 198,000 objects, at 500 ms 0.6–0.9 s, the sync ending ~1 s sooner on 2 cores; commits alone
 * (bench/store.ts) ran at the same rate with either (bench/RESULTS.md).
 */
const CHECKPOINT_INTERVAL_MS = 500;
/**
 * Frames in the WAL that make the next commit wait for a RESTART checkpoint. Its file stays within twice this and one
 * commit's frames (138 MiB at most in an initial sync of 198,000 objects).
 */
export const WAL_RESTART_BYTES = 64 * 1024 * 1024;
/** How long a commit waits for the worker to answer before giving up on it. */
const REPLY_TIMEOUT_MS = 10_000;

export type CheckpointerRequest =
  | { type: "start"; url: string; intervalMs: number; busyTimeoutMs: number }
  | { type: "restart" }
  | { type: "stop" };

export type CheckpointerReply =
  | {
      checkpointed: "PASSIVE" | "RESTART";
      busy: boolean;
      /** The frames in the WAL when the checkpoint ended, in bytes (0 when not in WAL mode). */
      walBytes: number;
    }
  | { error: string }
  | { stopped: true };

export interface CheckpointerOptions {
  url: string;
  walPath: string;
  busyTimeoutMs: number;
  restartBytes?: number;
  logger: Logger;
}

export interface Checkpointer {
  /** Keeps the WAL bounded; call with no write transaction open. */
  bound(): Promise<void>;
  stop(): Promise<void>;
}

export function startCheckpointer(options: CheckpointerOptions): Checkpointer {
  const { url, walPath, busyTimeoutMs, logger } = options;
  const restartBytes = options.restartBytes ?? WAL_RESTART_BYTES;
  let walBytes = 0;
  const worker = new Worker(new URL("./checkpoint-worker.ts", import.meta.url).href, { name: "checkpointer" });
  worker.unref();
  let listeners: ((reply: CheckpointerReply) => void)[] = [];
  let lastError = "";
  worker.addEventListener("message", (event: MessageEvent<CheckpointerReply>) => {
    const reply = event.data;
    if ("error" in reply && reply.error !== lastError) logger.warn("WAL checkpoint failed", { error: reply.error });
    lastError = "error" in reply ? reply.error : "";
    // A restart that was not kept from its work leaves the WAL to be written from its start: nothing in use.
    if ("checkpointed" in reply) walBytes = reply.checkpointed === "RESTART" && !reply.busy ? 0 : reply.walBytes;
    const waiting = listeners;
    listeners = [];
    for (const listener of waiting) listener(reply);
  });
  /** A worker that died or hung is not waited for again: the writer's backstop checkpoints take over. */
  let failed = false;
  worker.addEventListener("error", (event) => {
    failed = true;
    logger.error("WAL checkpoint worker failed; the writer checkpoints by itself from now on", {
      error: event.message,
    });
  });
  const send = (request: CheckpointerRequest) => worker.postMessage(request);

  function until(accept: (reply: CheckpointerReply) => boolean): Promise<CheckpointerReply | undefined> {
    return new Promise((resolve) => {
      const deadline = setTimeout(() => resolve(undefined), REPLY_TIMEOUT_MS);
      const listen = (reply: CheckpointerReply) => {
        if (!accept(reply)) return void listeners.push(listen);
        clearTimeout(deadline);
        resolve(reply);
      };
      listeners.push(listen);
    });
  }

  const walFileBytes = () => statSync(walPath, { throwIfNoEntry: false })?.size ?? 0;

  send({ type: "start", url, intervalMs: CHECKPOINT_INTERVAL_MS, busyTimeoutMs });
  let stopping: Promise<void> | undefined;
  return {
    async bound() {
      if (stopping || failed || (walBytes <= restartBytes && walFileBytes() <= 2 * restartBytes)) return;
      const done = until((reply) => !("checkpointed" in reply) || reply.checkpointed === "RESTART");
      send({ type: "restart" });
      const reply = await done;
      if (!reply) {
        failed = true;
        logger.error("WAL checkpoint worker does not answer; the writer checkpoints by itself from now on", {
          walBytes,
        });
      } else if ("busy" in reply)
        logger.debug(reply.busy ? "WAL not restarted: a read transaction outlasted the wait" : "WAL restarted", {
          walBytes: reply.walBytes,
        });
    },
    stop() {
      stopping ??= (async () => {
        const stopped = failed ? undefined : until((reply) => "stopped" in reply);
        send({ type: "stop" });
        // terminate() while the worker is inside a libSQL call aborts the whole process
        // (tests/bun-worker.test.ts): a worker that did not say it stopped is left to finish
        // its call and stop itself; it is unreferenced, so it does not hold the process.
        if (stopped && (await stopped)) worker.terminate();
      })();
      return stopping;
    },
  };
}
