/** kubemeta's base URL as the SSE client and `tail --url` take it. */

/**
 * What is wrong with `url` as kubemeta's base URL, if anything. A query or fragment would land before `/v1/watch` (or
 * cut it off): the path alone can say where kubemeta is mounted. Credentials before `@` fail every request in browsers
 * and Node (fetch refuses such a URL; Bun alone sends them): they go in a header. The URL is named by its scheme, host
 * and path alone, or not at all when it has no host: a proxy's access token may be in the query or fragment, a
 * password before @ (or, with no `http://`, in what reads as a path: `user:password@host`).
 */
export function baseUrlProblem(url: unknown): string | undefined {
  let base: URL | undefined;
  try {
    base = new URL(String(url));
  } catch {
    // Said below, with what is expected (URL.parse is too new for some browsers).
  }
  const expected = "kubemeta's http:// or https:// base URL (e.g. https://kubemeta.example.com)";
  if (!base?.host) return `not a URL with a host (not quoted: it may hold credentials); give ${expected}`;
  const named = `${base.protocol}//${base.host}${base.pathname}`;
  if (base.protocol !== "http:" && base.protocol !== "https:") return `${named} is not ${expected}`;
  if (base.username !== "" || base.password !== "")
    return (
      `${named} has credentials before @, which fetch refuses in browsers and Node; ` +
      "send them as a token or an authorization header"
    );
  if (base.search !== "" || base.hash !== "")
    return `${named} has a query or fragment; give kubemeta's base URL alone (a path is kept: /kubemeta)`;
  return undefined;
}
