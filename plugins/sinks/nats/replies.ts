/**
 * Where the replay responder will not answer, and how it says so without a log line per request.
 *
 * A reply goes out with kubemeta's own rights to whatever subject the requester named. Named as one of kubemeta's
 * data subjects (`<prefix>.all`), it would put replay chunks where consumers and JetStream streams take every message
 * for an update; named as a `$` subject (`$JS.API.STREAM.DELETE.<name>`, `$SYS…`), it would call a server API as
 * kubemeta. A requester's reply subject is an inbox (`_INBOX.…`, or the prefix its account allows): such requests are
 * refused, unanswered, as is one without a reply subject.
 */
import type { LogFields, Logger } from "../../../sdk/telemetry.ts";

/** Why kubemeta will not publish a reply to `reply`; undefined when it will. */
export function refusedReply(reply: string | undefined, prefix: string): string | undefined {
  if (!reply) return "no reply subject";
  if (reply === prefix || reply.startsWith(`${prefix}.`))
    return "a reply subject under kubemeta's own prefix (use an inbox)";
  if (reply.startsWith("$")) return "a reply subject of the server's own APIs ($…; use an inbox)";
  return undefined;
}

/** Interval between two log lines of one kind, from a flood of bad requests. */
const LOG_EVERY_MS = 60_000;

/**
 * A warning per `msg` at most once per interval; the next one says how many were not logged meanwhile (`unlogged`).
 * Whoever floods the responder with bad requests then gets no say over the log's volume.
 */
export function rateLimitedWarn(logger: Logger, everyMs = LOG_EVERY_MS): (msg: string, fields: LogFields) => void {
  const kinds = new Map<string, { at: number; unlogged: number }>();
  return (msg, fields) => {
    const now = Date.now();
    const kind = kinds.get(msg);
    if (kind && now - kind.at < everyMs) {
      kind.unlogged++;
      return;
    }
    logger.warn(msg, kind?.unlogged ? { ...fields, unlogged: kind.unlogged } : fields);
    kinds.set(msg, { at: now, unlogged: 0 });
  };
}
