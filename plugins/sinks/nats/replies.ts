/**
 * Where the replay responder will not answer (it says so without a log line per request: rateLimitedWarn).
 *
 * A reply goes out with kubemeta's own rights to whatever subject the requester named. Named as one of kubemeta's
 * data subjects (`<prefix>.all`), it would put replay chunks where consumers and JetStream streams take every message
 * for an update; named as a `$` subject (`$JS.API.STREAM.DELETE.<name>`, `$SYS…`), it would call a server API as
 * kubemeta. Named with a wildcard (`kubemeta.*.all`, `>`), it would reach every subscriber whose subscription matches
 * it, those of the data subjects included. Named with an empty token (`_INBOX..x`, `a.`, `.a`), it is no subject
 * anyone can subscribe to: the server takes the publish and delivers it nowhere, so the whole reply would be read from
 * the store for no one. A requester's reply subject is an inbox (`_INBOX.…`, or the prefix its account allows): such
 * requests are refused, unanswered, as is one without a reply subject.
 */

/** Why kubemeta will not publish a reply to `reply`; undefined when it will. */
export function refusedReply(reply: string | undefined, prefix: string): string | undefined {
  if (!reply) return "no reply subject";
  if (reply === prefix || reply.startsWith(`${prefix}.`))
    return "a reply subject under kubemeta's own prefix (use an inbox)";
  if (reply.startsWith("$")) return "a reply subject of the server's own APIs ($…; use an inbox)";
  if (/[*>]/.test(reply)) return "a reply subject with a wildcard (* or >; use an inbox)";
  if (reply.split(".").includes("")) return "a reply subject with an empty token (a leading, trailing or double dot)";
  return undefined;
}
