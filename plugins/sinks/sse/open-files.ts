/**
 * How many streams the process's open-file limit leaves room for. Each stream holds a socket; once every descriptor is
 * taken, Bun's listener fails each accept with EMFILE and tries again at once, a core busy, logging nothing, and no
 * connection is answered at all: not `/healthz`, not `/readyz`, not a stream past the limit, and the NATS sink cannot
 * reconnect. Refusing a stream with a 503 while descriptors remain keeps all of them working.
 */
import { openFileLimit } from "../../../sdk/open-files.ts";
import type { Logger } from "../../../sdk/telemetry.ts";

/**
 * Descriptors kept for everything but streams: at rest kubemeta holds about 50 (the source's watches, the store's
 * file, WAL and shared memory on each connection, NATS, Bun's event loops), and probes, `/metrics`, `/v1/objects`,
 * a webhook's connections and the NATS sink's reconnects come and go on top.
 */
export const OTHER_FILES = 128;

/**
 * The streams to serve at most: `maxStreams`, or fewer where the open-file limit leaves room for fewer, which is then
 * logged once, with what to change; `refusal` says why a subscribe past it is refused.
 */
export function streamCap(
  maxStreams: number,
  logger: Logger,
  limit = openFileLimit(),
): { cap: number; refusal: string } {
  const room = limit === undefined ? maxStreams : Math.max(0, limit - OTHER_FILES);
  if (room >= maxStreams) return { cap: maxStreams, refusal: `maxStreams is ${maxStreams}` };
  logger.warn(
    `the open-file limit (${limit}) leaves room for ${room} streams, fewer than maxStreams (${maxStreams}): ` +
      `subscribes past ${room} get 503; raise the limit to ${maxStreams + OTHER_FILES} (ulimit -n, LimitNOFILE, ` +
      "the container runtime's nofile) or lower maxStreams",
    { limit, maxStreams, streams: room },
  );
  return { cap: room, refusal: `the open-file limit, ${limit}, leaves room for ${room}; maxStreams is ${maxStreams}` };
}
