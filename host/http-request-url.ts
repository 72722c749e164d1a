/**
 * The URL Hono routes a request by. Bun makes it of the request line and the Host header, and leaves it unusable in
 * two cases: a request without a Host (HTTP/1.0 health checkers send none) gets its path alone, where Hono reads the
 * path after a scheme and a host (`GET /healthz` was routed as `z`); and a Host that is no host and port gets its path
 * alone too (`a b`, `x@127.0.0.1`) or a URL that does not parse (`127.0.0.1:99999`, `xn--`), which failed every
 * middleware that reads the URL's host with a 500. Such requests are handed on with their URL made whole from the
 * listener's, and one whose Host is malformed is marked, to be answered 400 (RFC 9112 §3.2) before any route.
 */
type BunServer = ReturnType<typeof Bun.serve>;

/** A request whose Host header is malformed, as it was sent. */
const malformedHosts = new WeakMap<Request, string>();

/** The Host header of a request that has a malformed one, as it was sent; undefined for any other request. */
export function malformedHost(request: Request): string | undefined {
  return malformedHosts.get(request);
}

/**
 * The request with a URL Hono can route by, and what `c.env` is to answer for it: the server for the request Bun
 * knows (its connection's timeout, its peer's address), which a copy is not.
 */
export function withWholeUrl(request: Request, server: BunServer): [Request, Pick<BunServer, "timeout" | "requestIP">] {
  const host = request.headers.get("host");
  const pathOnly = request.url.startsWith("/");
  // An empty Host is a URI without an authority (RFC 9112 §3.2), as good as none.
  const malformed = host && (pathOnly || !URL.canParse(request.url)) ? host : undefined;
  if (!pathOnly && malformed === undefined) return [request, server];
  // Past the scheme's `//`, the path starts at the first `/`: Bun makes a URL only of a Host without one.
  const path = pathOnly ? request.url : request.url.slice(request.url.indexOf("/", request.url.indexOf("//") + 2));
  const whole = new Request(new URL(path, server.url).href, request);
  if (malformed !== undefined) malformedHosts.set(whole, malformed);
  return [
    whole,
    {
      timeout: (_, seconds) => server.timeout(request, seconds),
      requestIP: () => server.requestIP(request),
    },
  ];
}
