/**
 * A plain-HTTP front (a reverse proxy, an ingress) for a test server, whose answer to each request a test decides:
 * forwarded as it came, rewritten, held back or answered by the front itself.
 */

export type Answer = (request: Request, upstream: URL) => Response | Promise<Response>;

/** A front for `server` whose answer to each request `answer` decides; `requests` counts them by path. */
export function front(server: { url: string }, answer: Answer) {
  const requests: string[] = [];
  const proxy = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const url = new URL(request.url);
      requests.push(`${url.pathname}${url.search}`);
      return answer(request, new URL(`${url.pathname}${url.search}`, server.url));
    },
  });
  return { requests, proxy };
}

export const forward = (request: Request, upstream: URL) => fetch(upstream, { headers: request.headers });
