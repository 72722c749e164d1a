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
/** How long a commit waits for the worker to answer before going on without it (see `bound`). */
const REPLY_TIMEOUT_MS = 10_000;
/** A worker that died is replaced after this, doubled for each one that died before it without a checkpoint done. */
const REPLACE_BACKOFF_MS = 250;
/** Workers replaced in a row (none checkpointing in between) before the writer's own checkpoints take over for good. */
const REPLACEMENTS_IN_A_ROW = 3;

export type CheckpointerRequest =
  /**
   * For tests: `dies`, the worker throws (uncaught) after a checkpoint, its reply not sent; `stallsMs`, its thread
   * stalls that long after its first checkpoint, answering nothing and holding no lock meanwhile.
   */
  | { type: "start"; url: string; intervalMs: number; busyTimeoutMs: number; dies?: boolean; stallsMs?: number }
  /** `id` comes back with its answer, so that a late answer to an earlier request is not taken for this one's. */
  | { type: "restart"; id: number }
  | { type: "stop" };

export type CheckpointerReply =
  | {
      checkpointed: "PASSIVE" | "RESTART";
      busy: boolean;
      /** The frames in the WAL when the checkpoint ended, in bytes (0 when not in WAL mode). */
      walBytes: number;
      /** The restart request's. */
      id?: number;
    }
  | { error: string; id?: number }
  | { stopped: true };

/** For tests: what a store's checkpointer is given besides its own options. */
export type CheckpointerTestOptions = Pick<CheckpointerOptions, "workerStallsMs" | "restartBytes">;

export interface CheckpointerOptions {
  url: string;
  walPath: string;
  busyTimeoutMs: number;
  restartBytes?: number;
  /** For tests: how long a commit waits for the worker's answer. */
  replyTimeoutMs?: number;
  /** For tests: how many workers, the first ones, die (an uncaught exception) after their first checkpoint. */
  workersThatDie?: number;
  /** For tests: how long the first worker's thread stalls after its first checkpoint, as on a stalled machine. */
  workerStallsMs?: number;
  logger: Logger;
}

export interface Checkpointer {
  /** Keeps the WAL bounded; call with no write transaction open. */
  bound(): Promise<void>;
  /**
   * The store stops: a commit waiting for its restart goes on now, and none waits after it. A silent worker held the
   * stop's last writes, and the store's close after them, up to REPLY_TIMEOUT_MS past shutdownTimeout; the WAL those
   * few writes add is folded in by the close.
   */
  endWaits(): void;
  /**
   * The host's shutdown begins, to end by `deadline` (ms since the epoch): the commits' waits, one under way too, end
   * halfway there (as endWaits ends them), the other half left for the commit of what the sources sent last and the
   * steps after it (the sinks' drain, the store's close). A restart answered before then is waited for.
   */
  endWaitsBy(deadline: number): void;
  /**
   * Ends the worker, waiting as long as a commit would for it to say it stopped, but not past `deadline` (ms since the
   * epoch): the writer's close is then the file's last and folds the WAL in.
   */
  stop(deadline?: number): Promise<void>;
}

export function startCheckpointer(options: CheckpointerOptions): Checkpointer {
  const { url, walPath, busyTimeoutMs, logger } = options;
  const restartBytes = options.restartBytes ?? WAL_RESTART_BYTES;
  const replyTimeoutMs = options.replyTimeoutMs ?? REPLY_TIMEOUT_MS;
  let walBytes = 0;
  /** Who waits for which answer: a restart's under its id, the stop's under STOPPED (no restart's id). */
  const waiting = new Map<number, (reply: CheckpointerReply) => void>();
  const STOPPED = 0;
  let requests = STOPPED;
  /** When each restart waited for was asked, by its id: how long a shutdown let its commit wait, said as it ends. */
  const askedAt = new Map<number, number>();
  let lastError = "";
  /**
   * The worker left a commit unanswered: commits go on without it, bounded by the writer's own checkpoints, until it
   * answers anything again. It is late, not gone (a machine stalled on memory pressure stalls every thread), and it
   * cannot be ended while it may be inside a libSQL call (terminate() aborts the process, tests/bun-worker.test.ts).
   */
  let silent = false;
  /** The worker died: not waited for until a new one replaces it, or ever again once too many died in a row. */
  let failed = false;
  let diedInARow = 0;
  let replacing: Timer | undefined;
  let stopping: Promise<void> | undefined;
  let waitsEnded = false;
  let endingWaits: Timer | undefined;
  let workersThatDie = options.workersThatDie ?? 0;
  let stallsMs = options.workerStallsMs;
  let worker = spawn();

  function spawn(): Worker {
    const started = new Worker(new URL("./checkpoint-worker.ts", import.meta.url).href, { name: "checkpointer" });
    started.unref();
    started.addEventListener("message", onReply);
    // Dead, it is inside no libSQL call (each returns before JS runs again): a new one can take over without a risk.
    started.addEventListener("error", (event) => {
      failed = true;
      for (const [id, waiter] of waiting) waiter({ error: "the WAL checkpoint worker died", id });
      waiting.clear();
      if (stopping) return;
      if (diedInARow === REPLACEMENTS_IN_A_ROW) {
        logger.error("WAL checkpoint worker failed; the writer checkpoints by itself from now on", {
          error: event.message,
        });
        return;
      }
      const inMs = REPLACE_BACKOFF_MS * 2 ** diedInARow++;
      logger.error("WAL checkpoint worker failed; a new one takes over", { error: event.message, inMs });
      replacing = setTimeout(() => {
        silent = failed = false;
        worker = spawn();
      }, inMs);
      replacing.unref();
    });
    const dies = workersThatDie > 0;
    workersThatDie--;
    started.postMessage({
      type: "start",
      url,
      intervalMs: CHECKPOINT_INTERVAL_MS,
      busyTimeoutMs,
      dies,
      stallsMs,
    } satisfies CheckpointerRequest);
    stallsMs = undefined;
    return started;
  }

  function onReply(event: MessageEvent<CheckpointerReply>) {
    const reply = event.data;
    if (silent) {
      silent = false;
      logger.info("WAL checkpoint worker answers again");
    }
    if ("error" in reply && reply.error !== lastError) logger.warn("WAL checkpoint failed", { error: reply.error });
    lastError = "error" in reply ? reply.error : "";
    if ("checkpointed" in reply) {
      diedInARow = 0;
      // A restart that was not kept from its work leaves the WAL to be written from its start: nothing in use.
      walBytes = reply.checkpointed === "RESTART" && !reply.busy ? 0 : reply.walBytes;
    }
    const key = "stopped" in reply ? STOPPED : reply.id;
    if (key === undefined) return;
    waiting.get(key)?.(reply);
    waiting.delete(key);
  }
  const send = (request: CheckpointerRequest) => worker.postMessage(request);

  /** The answer to the request under `key`, or undefined once the commit stops waiting for it. */
  function answer(key: number, waitMs = replyTimeoutMs): Promise<CheckpointerReply | undefined> {
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        waiting.delete(key);
        resolve(undefined);
      }, waitMs);
      waiting.set(key, (reply) => {
        clearTimeout(deadline);
        resolve(reply);
      });
    });
  }

  function endWaits() {
    waitsEnded = true;
    const since = Math.min(...askedAt.values());
    for (const [id, waiter] of waiting) {
      if (id === STOPPED) continue;
      waiting.delete(id);
      waiter({ error: "the store stops", id });
    }
    // One line for the shutdown, not one per commit: the WAL a restart would have emptied is still whole.
    if (askedAt.size > 0)
      logger.warn(
        "shutdown: a commit's wait for the WAL checkpoint worker's restart given up; the commit goes on without it, " +
          "the WAL folded in by the store's close or the next start: nothing is lost",
        { waitedMs: Date.now() - since },
      );
    askedAt.clear();
  }

  const walFileBytes = () => statSync(walPath, { throwIfNoEntry: false })?.size ?? 0;

  return {
    async bound() {
      if (stopping || waitsEnded || silent || failed) return;
      if (walBytes <= restartBytes && walFileBytes() <= 2 * restartBytes) return;
      const id = ++requests;
      const answered = answer(id);
      askedAt.set(id, Date.now());
      send({ type: "restart", id });
      const reply = await answered;
      askedAt.delete(id);
      if (waitsEnded) return;
      if (!reply) {
        silent = true;
        logger.warn("WAL checkpoint worker does not answer; the writer checkpoints by itself until it answers again", {
          walBytes,
        });
      } else if ("busy" in reply)
        logger.debug(reply.busy ? "WAL not restarted: a read transaction outlasted the wait" : "WAL restarted", {
          walBytes: reply.walBytes,
        });
    },
    endWaits,
    endWaitsBy(deadline) {
      clearTimeout(endingWaits);
      endingWaits = setTimeout(endWaits, Math.max(0, (deadline - Date.now()) / 2));
      endingWaits.unref();
    },
    stop(deadline = Number.POSITIVE_INFINITY) {
      stopping ??= (async () => {
        clearTimeout(replacing);
        clearTimeout(endingWaits);
        if (failed) return;
        // A silent one too: until its connection closes, the writer's close is not the file's last, which folds the
        // WAL in and removes it, and the WAL with what it holds would stay beside a file said to be the whole store.
        const waitedMs = Math.max(0, Math.min(replyTimeoutMs, deadline - Date.now()));
        const stopped = answer(STOPPED, waitedMs);
        send({ type: "stop" });
        // terminate() while the worker is inside a libSQL call aborts the whole process
        // (tests/bun-worker.test.ts): a worker that did not say it stopped is left to finish
        // its call and stop itself; it is unreferenced, so it does not hold the process.
        if (await stopped) worker.terminate();
        else
          logger.warn("WAL checkpoint worker did not stop; the WAL may stay beside the file until the next start", {
            waitedMs,
          });
      })();
      return stopping;
    },
  };
}
