/**
 * The webhook sink's retry policy against a real receiver on loopback: on4xx, Retry-After, maxRetries, a receiver
 * that does not answer in time, and what its failures log (never a secret of the URL). The rest of the sink:
 * tests/webhook.test.ts.
 */
import { expect, test } from "bun:test";
import { parseRetryAfter } from "../protocol/retry.ts";
import { rawPod, startTestHost, waitFor } from "../testing/index.ts";
import {
  acceptedNames,
  counter,
  firstFailure,
  hostAndReceiverPerTest,
  hostLogging,
  startReceiver,
  webhookSink,
} from "./webhook-receiver.ts";

const run = hostAndReceiverPerTest();

test("on4xx: skip drops a rejected batch, counts it, and delivers the next", async () => {
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') ? new Response("bad", { status: 400 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 }, on4xx: "skip" })] });
  for (const name of ["a", "poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => acceptedNames(run.receiver!).includes("b"), 5_000, "the batch after the rejected one");
  expect(acceptedNames(run.receiver)).toEqual(["a", "b"]);
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(1);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "status_4xx" })).toBe(
    1,
  );
});

test("on4xx: retry (the default) holds the line until the receiver accepts, so nothing overtakes", async () => {
  let rejections = 3;
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') && rejections-- > 0 ? new Response("no", { status: 422 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 } })] });
  for (const name of ["a", "poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => acceptedNames(run.receiver!).includes("b"), 5_000, "every batch");
  expect(acceptedNames(run.receiver)).toEqual(["a", "poison", "b"]);
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(4);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_4xx" })).toBe(3);
});

// RFC 9110: a 503's Retry-After says how long the service is expected to be unavailable.
test.each([
  [429, "status_429"],
  [503, "status_5xx"],
])("%d waits for Retry-After, not for the (much shorter) backoff", async (status, reason) => {
  let limited = true;
  run.receiver = await startReceiver(() => {
    if (!limited) return new Response("ok");
    limited = false;
    return new Response("slow down", { status, headers: { "Retry-After": "1" } });
  });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url)] });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retried batch");
  const [first, second] = run.receiver.requests;
  expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason })).toBe(1);
});

test("429 with Retry-After: 0 (or a past date) backs off instead of retrying at once, over and over", async () => {
  const limitedUntil = Date.now() + 500;
  run.receiver = await startReceiver(() =>
    Date.now() < limitedUntil
      ? new Response("slow down", { status: 429, headers: { "Retry-After": "0" } })
      : new Response("ok"),
  );
  run.host = await startTestHost({
    sinks: [webhookSink(run.receiver.url, { retry: { initial: "100ms", max: "100ms" } })],
  });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(() => run.receiver!.accepted().length === 1, 5_000, "the retried batch");
  // Full jitter over 100 ms: about ten attempts in 500 ms; a retry loop without a delay makes hundreds.
  expect(run.receiver.requests.length).toBeLessThan(40);
});

test("maxRetries gives up on a batch after that many retries, counts it, and goes on", async () => {
  run.receiver = await startReceiver((r) =>
    r.raw.includes('"poison"') ? new Response("down", { status: 503 }) : new Response("ok"),
  );
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { batch: { size: 1 }, maxRetries: 2 })] });
  for (const name of ["poison", "b"]) run.host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => acceptedNames(run.receiver!).includes("b"), 5_000, "the batch after the abandoned one");
  expect(run.receiver.requests.filter((r) => r.raw.includes('"poison"'))).toHaveLength(3);
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_5xx" })).toBe(3);
  expect(counter(run.host, "kubemeta_webhook_skipped_updates_total", { sink: "webhook", reason: "max_retries" })).toBe(
    1,
  );
});

test("a receiver that does not answer in time is retried", async () => {
  let hang = true;
  run.receiver = await startReceiver(async () => {
    if (!hang) return new Response("ok");
    hang = false;
    await Bun.sleep(1_000);
    return new Response("too late");
  });
  run.host = await startTestHost({ sinks: [webhookSink(run.receiver.url, { timeout: "150ms" })] });
  run.host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(
    () => run.receiver!.requests.length === 2 && run.receiver!.requests[1]!.status === 200,
    5_000,
    "the retry",
  );
  expect(counter(run.host, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "timeout" })).toBe(1);
});

/** Starts a host whose webhook posts to `url` and waits for its first failed delivery: that line, and the log. */
async function firstFailureLogged(url: string): Promise<{ failed: Record<string, unknown>; logged: string }> {
  const lines = await hostLogging(run, webhookSink(url));
  const failed = await firstFailure(run, lines);
  // A copy to match: Bun's toMatchObject writes its matchers into the object it checks (tests/bun-expect.test.ts),
  // and `failed` is one of `lines`, whose text must stay what was logged whenever it is read.
  return { failed: structuredClone(failed), logged: JSON.stringify(lines) };
}

test("a receiver that cannot be reached: the log says why, never the URL's own credential", async () => {
  // A port nothing listens on any more: each connection is refused.
  const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const url = `http://127.0.0.1:${closed.port}/hooks/T0KEN-in-the-path-0123456789`;
  closed.stop(true);
  const { failed, logged } = await firstFailureLogged(url);
  expect(failed).toMatchObject({ reason: "network", detail: expect.stringMatching(/^ECONNREFUSED: /) });
  expect(logged).not.toContain("T0KEN-in-the-path");
});

test("a receiver that resets the connection: the log says ECONNRESET, not Bun's advice to fetch's caller", async () => {
  const resetting = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data: (socket) => socket.terminate() },
  });
  try {
    const { failed } = await firstFailureLogged(`http://127.0.0.1:${resetting.port}/hook`);
    // Before the fix: "… For more information, pass `verbose: true` in the second argument to fetch()".
    expect(String(failed.detail)).not.toContain("verbose");
    // After: toMatchObject writes its matchers into `failed` (tests/bun-expect.test.ts).
    expect(failed).toMatchObject({ reason: "network", detail: expect.stringMatching(/^ECONNRESET: /) });
  } finally {
    resetting.stop(true);
  }
});

test("a receiver that echoes the request's path, query and credentials: no secret of the URL logged", async () => {
  // As Express's default 404 does, and a gateway quoting the Authorization it refused.
  const echoing = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const { pathname, search } = new URL(request.url);
      return new Response(`Cannot POST ${pathname}${search} (${request.headers.get("authorization")})`, {
        status: 404,
      });
    },
  });
  try {
    const base = `http://hook-user:URLPASS-0123456789@127.0.0.1:${echoing.port}`;
    const { failed, logged } = await firstFailureLogged(`${base}/hooks/PATHTOKEN-0123456789?key=QUERYKEY-0123`);
    expect(failed).toMatchObject({ status: 404, detail: expect.stringMatching(/^Cannot POST \[redacted\]/) });
    const basic = Buffer.from("hook-user:URLPASS-0123456789").toString("base64");
    for (const secret of ["URLPASS-0123456789", "PATHTOKEN-0123456789", "QUERYKEY-0123", basic])
      expect(logged).not.toContain(secret);
  } finally {
    echoing.stop(true);
  }
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2026-11-28T04:00:00Z");
  expect(parseRetryAfter("120", now)).toBe(120_000);
  expect(parseRetryAfter("Sat, 28 Nov 2026 04:00:30 GMT", now)).toBe(30_000);
  expect(parseRetryAfter("Sat, 28 Nov 2026 03:00:00 GMT", now)).toBe(0);
  expect(parseRetryAfter("soon", now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
});

test("Retry-After's three HTTP-date forms are read as GMT, whatever the local time zone", () => {
  const zone = process.env.TZ;
  // RFC 9110 §5.6.7: a recipient accepts the obsolete RFC 850 and asctime forms too; asctime names no zone.
  process.env.TZ = "America/New_York";
  try {
    const now = Date.parse("1994-11-06T08:49:07Z");
    for (const date of ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"])
      expect([date, parseRetryAfter(date, now)]).toEqual([date, 30_000]);
    expect(parseRetryAfter("Sun Nov 31 08:49:37 1994", now)).toBeUndefined();
    // A leap second is the last of its day: 23:59:60 is the next day's first second.
    const leap = Date.parse("2016-12-31T23:59:30Z");
    for (const date of [
      "Sat, 31 Dec 2016 23:59:60 GMT",
      "Saturday, 31-Dec-16 23:59:60 GMT",
      "Sat Dec 31 23:59:60 2016",
    ])
      expect([date, parseRetryAfter(date, leap)]).toEqual([date, 30_000]);
    // A two-digit year is the century's whose date is at most 50 years ahead.
    expect(parseRetryAfter("Saturday, 28-Nov-26 04:00:30 GMT", Date.parse("2026-11-28T04:00:00Z"))).toBe(30_000);
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  }
});

test("Retry-After dates of the Internet Message Format that real senders write are read in the zone they name", () => {
  const now = Date.parse("2026-12-07T20:00:00Z");
  // RFC 9110 §5.6.7 asks a recipient to read them too; a receiver that wrote one was retried before its time.
  for (const date of [
    "Mon, 7 Dec 2026 20:00:30 GMT", // Java's DateTimeFormatter.RFC_1123_DATE_TIME
    "Mon, 07 Dec 2026 20:00:30 -0000", // Python's email.utils.formatdate()
    "Mon, 07 Dec 2026 20:00:30 UTC", // Go's time.RFC1123 of a UTC time
    "Mon, 07 Dec 2026 21:30:30 +0130",
    "07 Dec 2026 15:00:30 -0500",
  ])
    expect([date, parseRetryAfter(date, now)]).toEqual([date, 30_000]);
  for (const unread of [
    "Mon, 07 Dec 2026 20:00:30 +0060",
    "Mon, 07 Dec 2026 20:00:30",
    "Mon, 07 Dec 2026 20:00:30 EST",
  ])
    expect([unread, parseRetryAfter(unread, now)]).toEqual([unread, undefined]);
});
