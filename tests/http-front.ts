/**
 * A plain-HTTP front (a reverse proxy, an ingress) for a test server, whose answer to each request a test decides:
 * forwarded as it came, rewritten, held back or answered by the front itself.
 */
import { join } from "node:path";

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

/** A kubeconfig in `dir` for a test API server reached at `url` (plain HTTP, a front of it), with its token. */
export async function kubeconfigFor(dir: string, url: string, token: string): Promise<string> {
  const file = join(dir, `front-${Date.now()}.kubeconfig`);
  await Bun.write(
    file,
    Bun.YAML.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: url } }],
      users: [{ name: "u", user: { token } }],
      contexts: [{ name: "main", context: { cluster: "c", user: "u" } }],
      "current-context": "main",
    }),
  );
  return file;
}

/** `response` with `text` sent before its body: what a hostile front slips into a watch. */
export function prepended(response: Response, text: string): Response {
  const body = new ReadableStream<Uint8Array>({
    async start(out) {
      out.enqueue(new TextEncoder().encode(text));
      if (response.body) for await (const chunk of response.body) out.enqueue(chunk);
      out.close();
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}
