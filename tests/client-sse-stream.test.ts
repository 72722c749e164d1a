/**
 * The client library over SSE, on what a connection does besides carrying updates: callbacks that take long, a stream
 * kubemeta ends (asking to come back later, or closing a subscriber too slow), a kubemeta that cannot be reached.
 */
import { afterEach, expect, test } from "bun:test";
import { subscribeSse, type SseSubscribeOptions, type Subscription } from "../client/index.ts";
import { overflowEvent } from "../plugins/sinks/sse/wire.ts";
import { waitFor } from "../testing/index.ts";
import { recorder } from "./client-recorder.ts";
import { encode, pod, scriptedWatch, type ScriptedWatch, sse, synced } from "./sse-script.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function watch(...args: Parameters<typeof scriptedWatch>): ScriptedWatch {
  const server = scriptedWatch(...args);
  cleanups.push(() => server.stop());
  return server;
}

function subscribe(options: SseSubscribeOptions): Subscription {
  const subscription = subscribeSse({ reconnect: { initialMs: 10, maxMs: 20 }, ...options });
  cleanups.push(() => subscription.stop());
  return subscription;
}

const reset = sse("RESET", { epoch: "e1", stream: "all", reason: "no resume point", code: "no-resume-point" }, "");

test("callbacks that take longer than idleTimeoutMs: no silence of the server's, no reconnect", async () => {
  const server = watch([[encode(`${reset}${sse("ADDED", pod(7, 0))}${synced(9)}`)]], { heartbeatMs: 50 });
  const r = recorder();
  const subscription = subscribe({
    url: server.url,
    streams: ["all"],
    idleTimeoutMs: 300,
    ...r.handlers,
    // A large reset applied by a UI that renders each row: the heartbeats wait, unread, meanwhile.
    onAdd(object) {
      const end = Date.now() + 600;
      while (Date.now() < end);
      r.handlers.onAdd(object);
    },
  });
  await subscription.synced;
  const after = server.heartbeats;
  await waitFor(() => server.heartbeats >= after + 12, 5_000, "heartbeats for twice idleTimeoutMs after the sync");
  expect(r.errors.map((e) => e.message)).toEqual([]);
  expect(server.lastEventIds).toEqual([null]);
});

test("a process that did not run for over idleTimeoutMs (stopped, a tab frozen): no silence, no cut", async () => {
  const server = watch([[encode(`${reset}${sse("ADDED", pod(7, 0))}${synced(9)}`)]], { heartbeatMs: 50 });
  const r = recorder();
  const subscription = subscribe({ url: server.url, streams: ["all"], idleTimeoutMs: 300, ...r.handlers });
  await subscription.synced;
  // The whole process held (as a SIGSTOP holds it): the idle timer comes due meanwhile and fires first once it runs.
  Bun.sleepSync(700);
  const after = server.heartbeats;
  await waitFor(() => server.heartbeats >= after + 12, 5_000, "heartbeats for twice idleTimeoutMs after the hold");
  expect(r.errors.map((e) => e.message)).toEqual([]);
  expect(server.lastEventIds).toEqual([null]);
});

test("a stream kubemeta ends before its SYNCED (a stalled snapshot closed): reported, and asked again", async () => {
  // What the sse sink's stall close leaves: the RESET and part of the snapshot, then the stream's end.
  const server = watch(
    [[encode(`${reset}${sse("ADDED", pod(7, 0))}`)], [encode(`${reset}${sse("ADDED", pod(7, 0))}${synced(9)}`)]],
    "end",
  );
  const r = recorder();
  const subscription = subscribe({ url: server.url, streams: ["all"], ...r.handlers });
  await subscription.synced;
  await waitFor(() => server.asked.length >= 3, 5_000, "a stream that synced, ended and was asked again");
  expect(r.errors.map((e) => e.message)).toEqual([
    "GET /v1/watch: kubemeta ended the stream before it was in sync (it is stopping, or this client took nothing " +
      "of its catch-up or snapshot for two heartbeats); resuming",
  ]);
  expect(r.calls).toEqual(["ADDED p7"]);
});

test("a stream kubemeta ends with retry: (its store unreadable): reported, and asked again when it said", async () => {
  const server = watch([[encode(`${reset}${synced(9)}retry: 600\n\n`)]], "end");
  const r = recorder();
  subscribe({ url: server.url, streams: ["all"], ...r.handlers });
  await waitFor(() => server.asked.length >= 2, 5_000, "the reconnect");
  expect(server.asked[1]! - server.asked[0]!).toBeGreaterThanOrEqual(600);
  expect(server.lastEventIds.slice(0, 2)).toEqual([null, "e1:9"]);
  expect(r.errors[0]?.message).toBe("GET /v1/watch: kubemeta ended the stream, asking to come back in 600 ms");
});

test("OVERFLOW (a subscriber too slow for kubemeta's buffer) is reported, and the stream resumed", async () => {
  const overflow = overflowEvent("e1", "all", 10);
  const server = watch(
    [[encode(`${reset}${synced(9)}${sse("ADDED", pod(10, 9), "e1:10")}${overflow}`)], [encode(synced(10))]],
    "end",
  );
  const r = recorder();
  subscribe({ url: server.url, streams: ["all"], ...r.handlers });
  await waitFor(() => server.asked.length >= 2, 5_000, "the reconnect");
  expect(server.lastEventIds[1]).toBe("e1:10");
  expect(r.errors.map((e) => e.message)).toEqual([
    "kubemeta closed the stream: this client fell too far behind it (OVERFLOW: its buffer for the stream filled); " +
      "resuming",
  ]);
});

test("a kubemeta that cannot be reached is named, its URL and path, in what is reported", async () => {
  const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const base = `http://127.0.0.1:${gone.port}`;
  gone.stop(true);
  const r = recorder();
  subscribe({ url: `${base}/kubemeta/`, streams: ["all"], ...r.handlers });
  await waitFor(() => r.errors.length >= 1, 5_000, "the refused connection");
  expect(r.errors[0]?.message).toStartWith(`GET ${base}/kubemeta/v1/watch: ECONNREFUSED`);
});

test("a connection cut mid-stream is named too", async () => {
  // Headers and a first chunk of a chunked body, then the socket closed: no proxy ends a stream that way.
  const cutting = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket) {
        const first = ": kubemeta\n\n";
        socket.write(
          "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
            `${first.length.toString(16)}\r\n${first}\r\n`,
        );
        socket.end();
      },
    },
  });
  cleanups.push(() => cutting.stop(true));
  const r = recorder();
  subscribe({ url: `http://127.0.0.1:${cutting.port}`, streams: ["all"], ...r.handlers });
  await waitFor(() => r.errors.length >= 1, 5_000, "the cut");
  // Bun's hint to pass `verbose: true` to fetch is left out: the reader of the error (tail's user) does not call fetch.
  expect(r.errors[0]?.message).toBe(
    `GET http://127.0.0.1:${cutting.port}/v1/watch: ECONNRESET: The socket connection was closed unexpectedly.`,
  );
});

/** A server answering `status` with a body that never ends: `chunk` every `everyMs` until the request is gone. */
function endlessAnswer(status: number, chunk: Uint8Array, everyMs: number) {
  let sent = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) =>
      new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (request.signal.aborted) return controller.close();
            controller.enqueue(chunk);
            sent++;
            await Bun.sleep(everyMs);
          },
        }),
        { status, headers: { "content-type": "text/plain" } },
      ),
  });
  cleanups.push(() => server.stop(true));
  return { url: server.url.href, sent: () => sent };
}

test("an answer that is no event stream and never ends (a 502 streaming) is reported, not read whole", async () => {
  const endless = endlessAnswer(502, new Uint8Array(64 * 1024).fill(0x41), 5);
  const r = recorder();
  subscribe({ url: endless.url, streams: ["all"], idleTimeoutMs: 60_000, ...r.handlers });
  await waitFor(() => r.errors.length >= 2, 5_000, "two answers reported");
  expect(r.errors[0]?.message).toBe(`GET /v1/watch answered 502: ${"A".repeat(200)}`);
});

test("a failure whose words are in its cause (Node's 'fetch failed', the socket's error in it) says both", async () => {
  // undici's shape: a TypeError whose cause is the socket's error, or an AggregateError of one per address tried.
  const refused = (address: string) =>
    Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: "ECONNREFUSED" });
  const causes = [refused("127.0.0.1:9"), new AggregateError([refused("::1:9"), refused("127.0.0.1:9")])];
  const bunFetch = globalThis.fetch;
  cleanups.push(() => {
    globalThis.fetch = bunFetch;
  });
  globalThis.fetch = Object.assign(
    () => Promise.reject(new TypeError("fetch failed", { cause: causes.shift() ?? refused("127.0.0.1:9") })),
    { preconnect: bunFetch.preconnect },
  );
  const r = recorder();
  subscribe({ url: "http://127.0.0.1:9", streams: ["all"], ...r.handlers });
  await waitFor(() => r.errors.length >= 2, 5_000, "two failures");
  expect(r.errors.slice(0, 2).map((e) => e.message)).toEqual([
    "GET http://127.0.0.1:9/v1/watch: fetch failed: connect ECONNREFUSED 127.0.0.1:9",
    "GET http://127.0.0.1:9/v1/watch: fetch failed: connect ECONNREFUSED ::1:9; connect ECONNREFUSED 127.0.0.1:9",
  ]);
});

test("stop() while a refusal's body is read reports nothing: no callback comes once stop() is called", async () => {
  const trickling = endlessAnswer(503, encode("a"), 20);
  const r = recorder();
  const subscription = subscribe({ url: trickling.url, streams: ["all"], ...r.handlers });
  // The headers come with the first byte: from then on the client reads the body, 200 characters of it.
  await waitFor(() => trickling.sent() >= 5, 5_000, "the body under way");
  await subscription.stop();
  expect(r.errors.map((e) => e.message)).toEqual([]);
});

test("streams that end right after their SYNCED (a proxy ending each at once): asked again on a backoff", async () => {
  const server = watch([[encode(`${reset}${synced(9)}`)], [encode(synced(9))]], "end");
  subscribe({ url: server.url, streams: ["all"], reconnect: { initialMs: 1, maxMs: 1_000 } });
  await waitFor(() => server.asked.length >= 13, 10_000, "13 connections");
  // Ceilings 1, 2, 4 … 512, 1000, 1000 ms with full jitter: 1.5 s in all on average, under 300 ms about never. Reset
  // at each SYNCED, the backoff stayed at its first ceiling: 13 connections in some 50 ms, for as long as it ran.
  expect(server.asked[12]! - server.asked[0]!).toBeGreaterThanOrEqual(300);
  expect(server.lastEventIds.slice(1).every((id) => id === "e1:9")).toBe(true);
});
