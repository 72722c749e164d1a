/**
 * The bearer-token guard of the HTTP listener (RFC 6750): a token in the `Authorization` header or as `access_token`,
 * compared in constant time; a malformed request told apart from a wrong token.
 */
import type { Context, MiddlewareHandler } from "hono";
import { createHash, timingSafeEqual } from "node:crypto";
import { BEARER_TOKEN_PATTERN } from "../protocol/token.ts";
import { refuseRepeated } from "../sdk/http.ts";

/**
 * Accepts `Authorization: Bearer <token>`, or `?access_token=<token>` (RFC 6750 §2.3)
 * because a browser's EventSource cannot set headers. Compares digests in constant time.
 */
export function bearerAuth(tokens: string[]): MiddlewareHandler {
  const digest = (token: string) => createHash("sha256").update(token).digest();
  const accepted = tokens.map(digest);
  return async (c, next) => {
    const header = c.req.header("authorization");
    const repeated = refuseRepeated(c, ["access_token"]);
    if (repeated) return repeated;
    const fromHeader = header === undefined ? undefined : bearerToken(header);
    const fromQuery = c.req.query("access_token");
    const presented = fromHeader ?? (fromQuery === "" ? MALFORMED : fromQuery);
    // RFC 6750 §3.1: a request that is malformed is `invalid_request`, 400; it is no wrong token to try again with.
    // §2: a client sends its token one way only.
    if (fromHeader !== undefined && fromQuery !== undefined)
      return invalidRequest(c, "the token came twice: send it in the Authorization header or as access_token");
    if (presented === MALFORMED)
      return invalidRequest(
        c,
        fromHeader === MALFORMED
          ? "malformed Authorization header: send Bearer and one token of printable ASCII without spaces"
          : "empty access_token: send one token of printable ASCII without spaces",
      );
    if (presented !== undefined) {
      const candidate = digest(presented);
      if (accepted.some((token) => timingSafeEqual(token, candidate))) return next();
    }
    // RFC 6750 §3.1: a token that is wrong is `invalid_token`; a request without one (or with Basic) gets no error.
    c.header("WWW-Authenticate", `Bearer realm="kubemeta"${presented === undefined ? "" : ', error="invalid_token"'}`);
    return c.json({ error: presented === undefined ? "missing bearer token" : "invalid bearer token" }, 401);
  };
}

const MALFORMED = Symbol("malformed");

function invalidRequest(c: Context, error: string): Response {
  c.header("WWW-Authenticate", 'Bearer realm="kubemeta", error="invalid_request"');
  return c.json({ error }, 400);
}

/**
 * The token of an `Authorization` header of the Bearer scheme (named in any case); undefined for another scheme, and
 * MALFORMED for the Bearer scheme without one token a config could hold (none, two, a character not printable ASCII).
 */
function bearerToken(header: string): string | typeof MALFORMED | undefined {
  const scheme = /^Bearer(?:\s+|$)/i.exec(header);
  if (!scheme) return undefined;
  const token = header.slice(scheme[0].length).trimEnd();
  return BEARER_TOKEN_PATTERN.test(token) ? token : MALFORMED;
}
