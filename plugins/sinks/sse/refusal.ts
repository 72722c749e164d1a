/** Headers of a `/v1/watch` stream, and the answer to a subscribe refused for a while. */
import type { Context } from "hono";
import { acceptWeight } from "../../../protocol/accept.ts";

export const HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  // Proxies such as nginx would otherwise hold events back in their buffers.
  "x-accel-buffering": "no",
};

/** When to come back after a refusal that passes (the sink not running, a limit reached). */
const COME_BACK_S = 5;

/**
 * A refusal that passes: the sink not running (it starts, or kubemeta drains its sinks on the way out), or a limit
 * of streams reached. Its connection is closed, so that clients waiting to come back hold no descriptors (see
 * sse/open-files.ts). An EventSource (it asks for text/event-stream alone) gives up for good on any status but 200,
 * so it gets a stream that says why in a comment, when to reconnect, and ends: it comes back, with its Last-Event-ID,
 * in COME_BACK_S. That is a client that wants an event stream more than JSON, in any spelling of its Accept; anyone
 * else (the client library asks for both, a plain fetch for anything) gets the status the HTTP API documents.
 */
export function comeBackLater(c: Context, status: 429 | 503, error: string): Response {
  const accept = c.req.header("accept");
  c.header("connection", "close");
  if (acceptWeight(accept, "text/event-stream") > acceptWeight(accept, "application/json"))
    return c.body(`: ${error}\nretry: ${COME_BACK_S * 1000}\n\n`, 200, HEADERS);
  c.header("retry-after", String(COME_BACK_S));
  return c.json({ error }, status);
}
