/**
 * Bun.serve quirks (1.4.4) that the listener and /v1/watch work around, shown on a bare server so a Bun
 * upgrade that changes them is noticed: no response headers before the first body byte, the idle timeout
 * cutting a streaming response that is quiet but still wanted, a request without a Host header given a URL
 * of its path alone, a connection that never sends a whole request closed whatever the idle timeout, and a HEAD
 * answered without headers its GET has.
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "node:net";
import { rawRequest, responseHeaders } from "./security-raw.ts";
import { waitFor } from "../testing/index.ts";

const servers: ReturnType<typeof Bun.serve>[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.stop(true);
});

function serve(options: Parameters<typeof Bun.serve>[0]): ReturnType<typeof Bun.serve> {
  const server = Bun.serve(options);
  servers.push(server);
  return server;
}

function quietStream(firstByte: string | undefined): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      if (firstByte !== undefined) controller.enqueue(new TextEncoder().encode(firstByte));
    },
  });
}

test("Bun.serve sends no headers until the first body byte: an SSE stream must write at once", async () => {
  const silentServer = serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(quietStream(undefined)) });
  const speakingServer = serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(quietStream(": opening\n\n")),
  });
  const headersWithin = (url: URL) =>
    Promise.race([
      fetch(url).then(
        () => "headers",
        () => "failed",
      ),
      Bun.sleep(1000).then(() => "nothing"),
    ]);
  const [silent, speaking] = await Promise.all([headersWithin(silentServer.url), headersWithin(speakingServer.url)]);
  expect(silent).toBe("nothing");
  expect(speaking).toBe("headers");
});

async function secondsUntilCut(exempt: boolean, holdMs: number): Promise<number | "open"> {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 1,
    fetch(request, srv) {
      if (exempt) srv.timeout(request, 0);
      return new Response(quietStream(": opening\n\n"));
    },
  });
  const started = Date.now();
  const response = await fetch(server.url);
  const reading = (async () => {
    try {
      for await (const _ of response.body!) {
        // only the opening comment ever comes
      }
    } catch {
      // the cut shows as ECONNRESET
    }
    return (Date.now() - started) / 1000;
  })();
  return Promise.race([reading, Bun.sleep(holdMs).then(() => "open" as const)]);
}

test("Bun.serve's HEAD lacks the GET's Date and implied type; a stream ended at once has a length on GET", async () => {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      if (new URL(request.url).pathname === "/text") return new Response("ok");
      const ended = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("{}"));
          controller.close();
        },
      });
      return new Response(ended);
    },
  });
  const answer = async (method: string, path: string): Promise<Record<string, string | boolean>> => {
    const { date, ...others } = await responseHeaders(server.url.href, `${method} ${path} HTTP/1.1`);
    return { dated: date !== undefined, ...others };
  };
  const text = { "content-length": "2" };
  expect(await answer("GET", "/text")).toEqual({ dated: true, ...text, "content-type": "text/plain;charset=utf-8" });
  expect(await answer("HEAD", "/text")).toEqual({ dated: false, ...text });
  // A stream that ends before Bun first writes is sent with its length; a HEAD's answer cannot know it will.
  expect(await answer("GET", "/stream")).toEqual({ dated: true, "content-length": "2" });
  expect(await answer("HEAD", "/stream")).toEqual({ dated: false, "transfer-encoding": "chunked" });
});

test("Bun.serve's idleTimeout cuts a quiet streaming response; server.timeout(request, 0) exempts it", async () => {
  // idleTimeout: 1 fires after about 4 s here (Bun's timer granularity).
  const [cut, exempt] = await Promise.all([secondsUntilCut(false, 6500), secondsUntilCut(true, 6500)]);
  expect(cut).toBeLessThan(6.5);
  expect(exempt).toBe("open");
}, 30_000);

test("Bun.serve gives a request without a Host header a URL of its path alone, no URL a parser takes", async () => {
  const server = serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => new Response(request.url) });
  const urlSeen = async (head: string, withoutHost: boolean) => {
    const exchange = await rawRequest(server.url.href, head, { withoutHost });
    const text = await waitFor(() => /\r\n\r\n(.+)$/.exec(exchange.text())?.[1], 5000, `the answer to ${head}`);
    exchange.close();
    return text;
  };
  expect(await urlSeen("GET /healthz?probe=1 HTTP/1.0", true)).toBe("/healthz?probe=1");
  expect(await urlSeen("GET /healthz HTTP/1.1\r\nHost: \r\nConnection: close", true)).toBe("/healthz");
  expect(() => new URL("/healthz")).toThrow();
  expect(await urlSeen("GET /healthz HTTP/1.0", false)).toBe(`${server.url.href}healthz`);
});

test("Bun.serve closes a connection that sends no whole request after 8-12 s, whatever its idleTimeout", async () => {
  const server = serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: () => new Response("x") });
  const started = Date.now();
  const closed = Promise.withResolvers<number>();
  // Half a request, as a slow client (or a slowloris) sends it.
  const socket = connect({ host: "127.0.0.1", port: server.port! }, () => socket.write("GET / HTTP/1.1\r\nX-Slow: 1"));
  socket.on("close", () => closed.resolve((Date.now() - started) / 1000));
  socket.on("error", () => {});
  const seconds = await Promise.race([closed.promise, Bun.sleep(20_000).then(() => Number.POSITIVE_INFINITY)]);
  socket.destroy();
  expect(seconds).toBeGreaterThan(4);
  expect(seconds).toBeLessThan(16);
}, 30_000);
