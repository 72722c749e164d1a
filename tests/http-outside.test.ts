/**
 * The HTTP listener as a client that sends what it should not: what README "Errors" promises for it, read over a raw
 * socket on loopback.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startTestHost, tempDir, type TestHost } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";
import { rawRequest } from "./security-raw.ts";

const TOKEN = "outside-token-0123456789abcdef";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

/** Status and body of the answer to a GET of `path` whose Host header is `host`, sent as it is. */
async function answer(th: TestHost, host: string, path: string): Promise<{ status: number; body: string }> {
  const exchange = await rawRequest(th.url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close`, {
    withoutHost: true,
  });
  try {
    const status = await exchange.status();
    const text = exchange.text();
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    exchange.close();
  }
}

// RFC 9112 §3.2: a Host with an invalid value is a 400. Bun makes no URL of some (a URL of the path alone) and one that
// does not parse of others (a port past 65535, a punycode label that decodes to nothing).
const MALFORMED_HOSTS = ["127.0.0.1:99999", "localhost:abc", "[::1", "xn--", "a b", "evil.example@127.0.0.1"];

test("a malformed Host header is a 400 saying so, with tokens or without, on every route; never a 500", async () => {
  const open = await startTestHost({ sinks: [{ type: "sse" }], http: { address: "127.0.0.1" } });
  const guarded = await startTestHost({ sinks: [{ type: "sse" }], http: { tokens: [TOKEN] } });
  hosts.push(open, guarded);
  for (const th of [open, guarded])
    for (const path of ["/healthz", "/v1/objects", `/v1/watch?access_token=${TOKEN}`])
      for (const host of MALFORMED_HOSTS) {
        const { status, body } = await answer(th, host, path);
        expect([host, path, status]).toEqual([host, path, 400]);
        expect(JSON.parse(body).error).toStartWith("malformed Host header");
      }
  // A well-formed Host is answered as ever, and so is an empty one (a URI without an authority), as one without Host.
  expect((await answer(open, "", "/healthz")).status).toBe(200);
  expect((await answer(open, "localhost:1", "/healthz")).status).toBe(200);
  expect((await answer(guarded, "kubemeta.example", "/healthz")).status).toBe(200);
});

// A browser's Origin header is the origin serialized (RFC 6454 §6.2): scheme and host in lower case, punycode, no
// default port. A corsOrigins entry written otherwise means that origin, and must allow it.
const ORIGINS_AS_SENT: [written: string, sent: string][] = [
  ["https://ui.example.com:443", "https://ui.example.com"],
  ["http://ui.example.com:80", "http://ui.example.com"],
  ["https://UI.Example.com", "https://ui.example.com"],
  ["https://bücher.example", "https://xn--bcher-kva.example"],
];

test("a corsOrigins entry in another case, with its default port or in Unicode allows the Origin a browser sends", async () => {
  const th = await startTestHost({
    sinks: [{ type: "sse" }],
    http: { address: "127.0.0.1", corsOrigins: ORIGINS_AS_SENT.map(([written]) => written) },
  });
  hosts.push(th);
  const allowed = async (origin: string) =>
    (
      await fetch(`${th.url}/v1/objects`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "GET" },
      })
    ).headers.get("access-control-allow-origin");
  for (const [, sent] of ORIGINS_AS_SENT) expect(await allowed(sent)).toBe(sent);
  expect(await allowed("https://other.example.com")).toBeNull();
});

// What no browser sends as an Origin whatever the page: a user, a query, a fragment.
const NO_ORIGINS = ["https://user@ui.example.com", "https://ui.example.com?x=1", "https://ui.example.com#x"];

test("a corsOrigins entry that is no origin is a config error at its key", async () => {
  const dir = await tempDir();
  const config = { http: { address: "127.0.0.1", corsOrigins: [...NO_ORIGINS, "https://ok.example.com:8443", "*"] } };
  await writeFile(join(dir, "kubemeta.json"), JSON.stringify(config));
  const { code, stderr } = await runMain(["--check", "--config", join(dir, "kubemeta.json")], { cwd: dir });
  expect(code).toBe(1);
  for (const [i, written] of NO_ORIGINS.entries())
    expect(stderr).toContain(
      `corsOrigins[${i}]: ${JSON.stringify(written)} is no origin: write its scheme, host and port alone`,
    );
  expect(stderr).not.toContain(`corsOrigins[${NO_ORIGINS.length}]`);
  expect(stderr).not.toContain(`corsOrigins[${NO_ORIGINS.length + 1}]`);
});
