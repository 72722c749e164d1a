/**
 * `kubemeta_open_files` beside `kubemeta_open_files_limit`, and a warning while they meet. Once no descriptor is left,
 * Bun's listener fails each accept with EMFILE and answers no connection, probes included, and says nothing of it
 * (README "Known limits"): this says it, once a minute while it lasts and once when it is over.
 */
import { readdirSync } from "node:fs";
import { openFileLimit } from "../sdk/open-files.ts";
import { type Logger, type Metrics, rateLimitedWarn } from "../sdk/telemetry.ts";

export const INTERVAL_MS = 2000;
/** Counted as out of them with this few left: a connection or two more and the listener answers nobody. */
const LAST_FEW = 16;

/** Counts the process's descriptors every INTERVAL_MS; a no-op where `/proc` says no limit. */
export function watchOpenFiles(metrics: Metrics, logger: Logger, limit = openFileLimit()): { stop(): void } {
  if (limit === undefined) return { stop() {} };
  const open = metrics.gauge("kubemeta_open_files", "Open file descriptors: sockets, the store's files, pipes.");
  metrics.gauge("kubemeta_open_files_limit", "The open-file limit the process runs under.").set(limit);
  const short = rateLimitedWarn(logger);
  let out = false;
  const look = () => {
    let count: number;
    try {
      count = readdirSync("/proc/self/fd").length;
    } catch (error) {
      // Listing the descriptors takes one: none left is what this is here to say.
      if ((error as NodeJS.ErrnoException).code !== "EMFILE") return;
      count = limit;
    }
    open.set(count);
    if (count >= limit - LAST_FEW) {
      out = true;
      short(
        "out of open files (EMFILE): no new connection is answered, probes included, until some close; raise the " +
          "open-file limit, or lower sse maxStreams",
        { open: count, limit },
      );
    } else if (out) {
      out = false;
      logger.info("open files below the limit again", { open: count, limit });
    }
  };
  // Shown from the start: a series that appears only at the first interval is one /metrics grows by.
  look();
  const timer = setInterval(look, INTERVAL_MS);
  // It watches the process; it must not keep it alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
