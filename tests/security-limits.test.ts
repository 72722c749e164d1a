/**
 * Issue 10: limits on request size, query cost and streams per client. Whatever a query
 * string holds, the answer is a 4xx or a correct stream, never a 500 and never a hang.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { MAX_KINDS, MAX_PARAM_LENGTH } from "../sdk/http.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { type RawExchange, rawRequest } from "./security-raw.ts";
import { openSse, type SseConnection } from "./sse-client.ts";

const hosts: TestHost[] = [];
const open: (SseConnection | RawExchange)[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(sse: Record<string, unknown> = {}): Promise<TestHost> {
  const th = await startTestHost({ sinks: [{ type: "sse", ...sse }] });
  hosts.push(th);
  th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  th.changes.apply("pods", "ADDED", rawPod("web-2", { node: "n2" }));
  await th.changes.flush();
  return th;
}

const ROUTES = ["/v1/objects", "/v1/updates", "/v1/watch"];

/** GETs with a deadline: a hang fails the test rather than stalling it. */
async function get(th: TestHost, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${th.url}${path}`, { headers, signal: AbortSignal.timeout(5000) });
}

async function refusal(response: Response): Promise<[number, string]> {
  const body = (await response.json()) as { parameter?: string };
  return [response.status, body.parameter ?? ""];
}

describe("query cost", () => {
  test(`a value over ${MAX_PARAM_LENGTH} characters is refused naming its parameter; a stream's with 404`, async () => {
    const th = await host();
    const long = "a".repeat(4000);
    for (const route of ROUTES) {
      expect([route, await refusal(await get(th, `${route}?stream=node/${long}`))]).toEqual([route, [404, "stream"]]);
    }
    expect(await refusal(await get(th, `/v1/watch?namespace=${long}`))).toEqual([400, "namespace"]);
    expect(await refusal(await get(th, `/v1/objects?node=${long}`))).toEqual([400, "node"]);
    expect(await refusal(await get(th, `/v1/updates?limit=${"1".repeat(4000)}`))).toEqual([400, "limit"]);
    const since = `${th.host.epoch}:1${"0".repeat(4000)}`;
    expect(await refusal(await get(th, `/v1/updates?since=${since}`))).toEqual([400, "since"]);
    const kinds = Array.from({ length: 1000 }, () => "Pod").join(",");
    expect(await refusal(await get(th, `/v1/watch?kinds=${kinds}`))).toEqual([400, "kinds"]);
  });

  test(`kinds names at most ${MAX_KINDS} kinds`, async () => {
    const th = await host();
    const kinds = (n: number) => Array.from({ length: n }, (_, i) => `Kind${i}`).join(",");
    expect((await get(th, `/v1/objects?kind=${kinds(MAX_KINDS)}`)).status).toBe(200);
    expect(await refusal(await get(th, `/v1/objects?kind=${kinds(MAX_KINDS + 1)}`))).toEqual([400, "kind"]);
    expect(await refusal(await get(th, `/v1/watch?kinds=${kinds(MAX_KINDS + 1)}`))).toEqual([400, "kinds"]);
  });
});

test("a GET with a body is refused before it is read", async () => {
  const th = await host();
  for (const path of [...ROUTES, "/metrics", "/healthz"]) {
    const sized = await rawRequest(th.url, `GET ${path} HTTP/1.1\r\nContent-Length: 5`, { body: "hello" });
    open.push(sized);
    expect([path, await sized.status()]).toEqual([path, 400]);
    const chunked = await rawRequest(th.url, `GET ${path} HTTP/1.1\r\nTransfer-Encoding: chunked`, {
      body: "5\r\nhello\r\n0\r\n\r\n",
    });
    open.push(chunked);
    expect([path, await chunked.status()]).toEqual([path, 400]);
  }
  const plain = await rawRequest(th.url, "GET /v1/objects HTTP/1.1\r\nContent-Length: 0");
  open.push(plain);
  expect(await plain.status()).toBe(200);
});

test("past maxStreamsPerClient an address gets 429 until one of its streams closes; others are not held", async () => {
  const th = await host({ maxStreamsPerClient: 2 });
  const watch = async () => {
    const c = await openSse(th.url, {});
    open.push(c);
    return c;
  };
  const first = await watch();
  await watch();
  const refused = await get(th, "/v1/watch");
  expect(refused.status).toBe(429);
  expect(refused.headers.get("retry-after")).toBe("5");
  expect(((await refused.json()) as { error: string }).error).toContain("maxStreamsPerClient");
  expect(th.host.metrics.counter("kubemeta_sse_rejected_total", "").get({ reason: "max_streams_per_client" })).toBe(1);

  // Another address on loopback is another client.
  const other = await rawRequest(th.url, "GET /v1/watch HTTP/1.1", { localAddress: "127.0.0.2" });
  open.push(other);
  expect(await other.status()).toBe(200);
  await waitFor(() => other.text().includes("event: SYNCED"), 5000, "the other client's snapshot");

  first.close();
  const again = await waitFor(
    async () => {
      const c = await openSse(th.url, {});
      if (c.status === 200) return c;
      c.close();
      return undefined;
    },
    5000,
    "a stream once the first closed",
  );
  open.push(again);
  expect((await again.next()).type).toBe("RESET");
});

/**
 * A correct stream: RESET and the state, or the missed updates in order, up to SYNCED (two pods were committed, so
 * anything else before SYNCED is a fault).
 */
async function syncs(c: SseConnection): Promise<boolean> {
  const events = await c.takeUntil("SYNCED");
  const types = events.map((e) => e.type).join(" ");
  return /^(RESET (ADDED ){0,2}|(ADDED ){0,2})SYNCED$/.test(types);
}

describe("fuzz-ish: odd values for since, Last-Event-ID, limit, kinds and stream", () => {
  const values = (epoch: string) => [
    "",
    " ",
    "-1",
    "0",
    "1e309",
    "NaN",
    "9".repeat(30),
    "9007199254740993",
    `${epoch}:-1`,
    `${epoch}:0`,
    `${epoch}:1`,
    `${epoch}:999999999999999`,
    `${epoch}:9999999999999999`,
    `${epoch}:01`,
    `${epoch}:1.5`,
    `${epoch}:1:2`,
    "other-epoch:1",
    "other-epoch:0",
    ":1",
    `${epoch}\u0000:1`,
    `${epoch}:1\u0007`,
    "\u001b[31m",
    "\r\nX-Injected: 1",
    "node/",
    "node/n1",
    "node/N1",
    "node/..",
    "node/n1/../all",
    "shared",
    "all",
    "Pod,",
    "Pod,,Node",
    ",",
    "%",
    "💥",
    "a".repeat(MAX_PARAM_LENGTH + 1),
  ];

  test("every answer is a 4xx, or a 200 with a well-formed body or stream, within its deadline", async () => {
    const th = await host();
    const cases: string[] = [];
    for (const value of values(th.host.epoch)) {
      for (const parameter of ["since", "limit", "kinds", "kind", "stream", "namespace", "node"]) {
        for (const route of ROUTES) cases.push(`${route}?${parameter}=${encodeURIComponent(value)}`);
      }
    }
    for (const path of cases) {
      const response = await get(th, path);
      expect([path, response.status < 500]).toEqual([path, true]);
      if (response.status !== 200 || !path.startsWith("/v1/watch")) {
        expect(typeof (await response.json())).toBe("object");
        continue;
      }
      await response.body?.cancel();
      const c = await openSse(th.url, Object.fromEntries(new URL(path, th.url).searchParams));
      open.push(c);
      expect([path, await syncs(c)]).toEqual([path, true]);
      c.close();
    }
  }, 60_000);

  test("an odd Last-Event-ID resumes, or starts over with RESET: never an error", async () => {
    const th = await host();
    for (const value of values(th.host.epoch)) {
      // fetch sends only Latin-1 header values without control characters; a raw socket sends the rest as they are.
      if (/^[\u0020-\u007e]*$/.test(value)) {
        const c = await openSse(th.url, {}, { lastEventId: value });
        open.push(c);
        expect([value, c.status]).toEqual([value, 200]);
        expect([value, await syncs(c)]).toEqual([value, true]);
        c.close();
        continue;
      }
      const raw = await rawRequest(th.url, `GET /v1/watch HTTP/1.1\r\nLast-Event-ID: ${value}`);
      open.push(raw);
      const status = await raw.status();
      expect([value, status < 500]).toEqual([value, true]);
      if (status === 200) await waitFor(() => raw.text().includes("event: SYNCED"), 5000, `SYNCED after ${value}`);
      raw.close();
    }
  }, 60_000);
});
