/** The shared listener: bearer tokens, TLS, CORS for a browser's EventSource, and its config. */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { testPki } from "../simulator/certs.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { openSse } from "./sse-client.ts";
import { rawRequest, responseHeaders } from "./security-raw.ts";
import { builtins } from "../plugins/index.ts";

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-fedcba9876543210";
process.env.KUBEMETA_TEST_TOKEN_A = TOKEN_A;
process.env.KUBEMETA_TEST_TOKEN_B = TOKEN_B;
afterAll(() => {
  delete process.env.KUBEMETA_TEST_TOKEN_A;
  delete process.env.KUBEMETA_TEST_TOKEN_B;
});

/** A sink plugin, loaded by path, whose routes have a path parameter. */
const PARAM_ROUTES_PLUGIN = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "hook",
  description: "Mounts POST /hooks/:id and GET /hooks/:id/status.",
  schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      ctx.http.post("/hooks/:id", (c) => c.json({ id: c.req.param("id") }));
      ctx.http.get("/hooks/:id/status", (c) => c.json({ id: c.req.param("id") }));
      // With a status, Hono says the type itself (a bare c.text(s) leaves it to Bun: the README says so).
      ctx.http.get("/hooks/:id/text", (c) => c.text("ok", 200));
      // Bodies whose type the Response gives itself, none said by the plugin.
      ctx.http.get("/hooks/:id/form", () => new Response(new URLSearchParams({ a: "1" })));
      ctx.http.get("/hooks/:id/blob", () => new Response(new Blob(["{}"], { type: "application/json" })));
      ctx.http.get("/hooks/:id/multipart", () => {
        const form = new FormData();
        form.set("a", "1");
        return new Response(form);
      });
    },
    async stop() {},
  }),
});
`;

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(http: Record<string, unknown>): Promise<TestHost> {
  const th = await startTestHost({ sinks: [{ type: "sse" }], http });
  hosts.push(th);
  return th;
}

describe("bearer tokens (from the environment through ${VAR})", () => {
  test("guard /v1 and /metrics with any configured token; /healthz and /readyz stay open", async () => {
    const th = await host({ tokens: ["${KUBEMETA_TEST_TOKEN_A}", "${KUBEMETA_TEST_TOKEN_B}"] });
    const status = async (path: string, headers: Record<string, string> = {}) =>
      (await fetch(`${th.url}${path}`, { headers })).status;
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

    for (const path of ["/v1/objects", "/v1/updates", "/v1/watch", "/metrics", "/v1/nothing-here"]) {
      expect([path, await status(path)]).toEqual([path, 401]);
      expect([path, await status(path, bearer("wrong-token-0123456789"))]).toEqual([path, 401]);
      expect([path, await status(path, { authorization: "Basic dXNlcjpwYXNz" })]).toEqual([path, 401]);
    }
    expect(await status("/v1/objects", bearer(TOKEN_A))).toBe(200);
    expect(await status("/metrics", bearer(TOKEN_B))).toBe(200);
    expect(await status("/v1/nothing-here", bearer(TOKEN_A))).toBe(404);
    expect(await status(`/v1/objects?access_token=${TOKEN_B}`)).toBe(200);
    // Two tokens in the query: which one counts is no guess to make.
    const twice = await fetch(`${th.url}/v1/objects?access_token=${TOKEN_B}&access_token=wrong-token-0123456789`);
    expect([twice.status, await twice.json()]).toEqual([
      400,
      { error: "access_token: given more than once; it takes one value", parameter: "access_token" },
    ]);
    expect(await status("/healthz")).toBe(200);
    expect(await status("/readyz")).toBe(200);

    // RFC 6750 §3.1: `error="invalid_token"` for a token that is wrong, in the header or the query, and no error
    // attribute when no token came (none, or another scheme).
    const challenge = async (path: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${th.url}${path}`, { headers });
      return [response.headers.get("www-authenticate"), ((await response.json()) as { error: string }).error];
    };
    const missing = ['Bearer realm="kubemeta"', "missing bearer token"];
    const invalid = ['Bearer realm="kubemeta", error="invalid_token"', "invalid bearer token"];
    expect(await challenge("/v1/watch")).toEqual(missing);
    expect(await challenge("/v1/watch", { authorization: "Basic dXNlcjpwYXNz" })).toEqual(missing);
    expect(await challenge("/v1/watch", bearer("wrong-token-0123456789"))).toEqual(invalid);
    expect(await challenge("/metrics?access_token=wrong-token-0123456789")).toEqual(invalid);
    const c = await openSse(th.url, {}, { headers: bearer(TOKEN_A) });
    expect((await c.next()).type).toBe("RESET");
    c.close();
  });

  test("an unset variable or a short token is a config error naming its path", async () => {
    const resolve = (tokens: string[]) =>
      resolveConfig({ http: { tokens } }, { baseDir: "/", env: {}, registry: builtins });
    await expect(resolve(["${KUBEMETA_NO_SUCH_VAR}"])).rejects.toThrow(ConfigError);
    const short = await resolve(["short"]).catch((error: ConfigError) => error);
    expect((short as ConfigError).issues[0]!.path).toBe("http.tokens[0]");
  });
});

describe("TLS", () => {
  test("serves https with the configured certificate and key, SSE included", async () => {
    const pki = await testPki();
    const th = await host({
      tls: { cert: join(pki.dir, "server.crt"), key: join(pki.dir, "server.key") },
      tokens: [TOKEN_A],
    });
    expect(th.url).toStartWith("https://127.0.0.1:");
    await expect(fetch(`${th.url}/healthz`)).rejects.toThrow();
    const health = await fetch(`${th.url}/healthz`, { tls: { ca: pki.caPem } });
    expect(await health.text()).toBe("ok\n");

    await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    await th.changes.flush();
    const c = await openSse(th.url, {}, { tls: { ca: pki.caPem }, headers: { authorization: `Bearer ${TOKEN_A}` } });
    expect((await c.takeUntil("SYNCED")).map((e) => e.type)).toEqual(["RESET", "ADDED", "SYNCED"]);
    c.close();
  });

  test("the certificate is read at start: one renewed on disk is served from the next start", async () => {
    const pki = await testPki();
    const dir = await tempDir();
    const [cert, key] = [join(dir, "server.crt"), join(dir, "server.key")];
    await writeFile(cert, pki.serverCertPem);
    await writeFile(key, pki.serverKeyPem);
    const th = await host({ tls: { cert, key } });
    // The renewal: another certificate and key, self-signed, where the served ones were.
    const renewal = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"].concat([
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert,
      ]),
      { stderr: "pipe" },
    );
    expect(renewal.exitCode).toBe(0);
    const renewedCa = await Bun.file(cert).text();
    await expect(fetch(`${th.url}/healthz`, { tls: { ca: renewedCa }, keepalive: false })).rejects.toThrow();
    expect((await fetch(`${th.url}/healthz`, { tls: { ca: pki.caPem }, keepalive: false })).status).toBe(200);
    // The next start serves the renewal: the refusal above was of the old certificate, not of an unusable new one.
    const restarted = await host({ tls: { cert, key } });
    expect((await fetch(`${restarted.url}/healthz`, { tls: { ca: renewedCa }, keepalive: false })).status).toBe(200);
    await rm(dir, { recursive: true, force: true });
  });

  test("a missing certificate file is a config error", async () => {
    const error = await resolveConfig(
      { http: { tls: { cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem" } } },
      { baseDir: "/", registry: builtins },
    ).catch((e: ConfigError) => e);
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual(["http.tls.cert", "http.tls.key"]);
  });

  test("a file that is not the PEM it should be, or a key not the certificate's, is a config error", async () => {
    const pki = await testPki();
    const issuesOf = async (tls: { cert: string; key: string }) => {
      const error = await resolveConfig({ http: { tls } }, { baseDir: "/", registry: builtins }).catch(
        (e: ConfigError) => e,
      );
      return error instanceof ConfigError ? error.issues.map((i) => `${i.path}: ${i.message}`) : [];
    };
    const { serverCertFile: cert, serverKeyFile: key, clientKeyFile: otherKey } = pki;
    expect(await issuesOf({ cert, key })).toEqual([]);
    expect(await issuesOf({ cert: key, key: cert })).toEqual([
      "http.tls.cert: not a PEM file holding a certificate",
      "http.tls.key: not a PEM file holding a private key",
    ]);
    expect(await issuesOf({ cert, key: otherKey })).toEqual([
      "http.tls: the key is not the certificate's: they do not form a pair",
    ]);
  });

  test("a token with a space (it could never be sent in a header) is a config error", async () => {
    const error = await resolveConfig(
      { http: { tokens: ["two words-0123456789"] } },
      { baseDir: "/", registry: builtins },
    ).catch((e: ConfigError) => e);
    expect((error as ConfigError).issues).toEqual([
      expect.objectContaining({ path: "http.tokens[0]", message: "a token is printable ASCII without spaces" }),
    ]);
  });
});

describe("CORS", () => {
  const ORIGIN = "https://dashboard.example.com";

  test(
    "a preflight from an allowed origin passes even with auth on, " + "and the stream carries the CORS header",
    async () => {
      const th = await host({ corsOrigins: [ORIGIN], tokens: [TOKEN_A] });
      const preflight = await fetch(`${th.url}/v1/watch?stream=all`, {
        method: "OPTIONS",
        headers: {
          origin: ORIGIN,
          "access-control-request-method": "GET",
          "access-control-request-headers": "last-event-id, authorization",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("last-event-id");
      expect(preflight.headers.get("access-control-allow-methods")).toContain("GET");

      const c = await openSse(th.url, {}, { headers: { origin: ORIGIN, authorization: `Bearer ${TOKEN_A}` } });
      expect(c.response.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      // A fetch-based client in the page (the client library) may read how long a refusal asks it to wait.
      expect(c.response.headers.get("access-control-expose-headers")).toBe("Retry-After");
      expect(c.response.headers.get("content-type")).toStartWith("text/event-stream");
      expect((await c.next()).type).toBe("RESET");
      c.close();

      const other = await fetch(`${th.url}/v1/watch`, {
        method: "OPTIONS",
        headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
      });
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
    },
  );

  test("an origin must be scheme://host[:port] or *", async () => {
    const error = await resolveConfig(
      { http: { corsOrigins: ["dashboard.example.com/"] } },
      { baseDir: "/", registry: builtins },
    ).catch((e: ConfigError) => e);
    expect((error as ConfigError).issues[0]!.path).toBe("http.corsOrigins[0]");
  });
});

describe("listener", () => {
  test("idleTimeout is a duration within Bun.serve's limit, in whole seconds", async () => {
    expect(
      (await resolveConfig({ http: { idleTimeout: "90s" } }, { baseDir: "/", registry: builtins })).http.idleTimeout,
    ).toBe(90);
    expect((await resolveConfig({}, { baseDir: "/", registry: builtins })).http.idleTimeout).toBe(30);
    const error = await resolveConfig({ http: { idleTimeout: "5m" } }, { baseDir: "/", registry: builtins }).catch(
      (e: ConfigError) => e,
    );
    expect((error as ConfigError).issues[0]!.path).toBe("http.idleTimeout");
  });

  test("a request without a Host header (an HTTP/1.0 health checker's) reaches its route, tokens checked", async () => {
    const th = await host({ tokens: ["${KUBEMETA_TEST_TOKEN_A}"] });
    await th.changes.apply("pods", "ADDED", rawPod("web-0", { node: "n1" }));
    await th.changes.flush();
    const answer = async (head: string) => {
      const exchange = await rawRequest(th.url, head, { withoutHost: true });
      const answered = () => {
        const text = exchange.text();
        const bodyStart = text.indexOf("\r\n\r\n") + 4;
        const length = /content-length: (\d+)/i.exec(text)?.[1];
        if (bodyStart < 4 || length === undefined || text.length - bodyStart < Number(length)) return undefined;
        return { status: Number(text.split(" ")[1]), body: text.slice(bodyStart) };
      };
      const response = await waitFor(answered, 5000, `the answer to ${head}`);
      exchange.close();
      return response;
    };
    expect(await answer("GET /healthz HTTP/1.0")).toEqual({ status: 200, body: "ok\n" });
    expect((await answer("GET /v1/objects?kind=Pod HTTP/1.0")).status).toBe(401);
    const objects = await answer(`GET /v1/updates?stream=node/n1 HTTP/1.0\r\nAuthorization: Bearer ${TOKEN_A}`);
    expect([objects.status, JSON.parse(objects.body).items.map((u: { name: string }) => u.name)]).toEqual([
      200,
      ["web-0"],
    ]);
  });

  test("HEAD answers the headers a GET does: its Date, its type, and its length or chunked framing alike", async () => {
    const th = await host({});
    await th.changes.apply("pods", "ADDED", rawPod("web-0"));
    await th.changes.flush();
    /** The headers of the answer to `method`, its Date's value said apart (two answers may be a second apart). */
    const answer = async (method: string, path: string) => {
      const { date, ...others } = await responseHeaders(th.url, `${method} ${path} HTTP/1.1`);
      return { date: new Date(date ?? "").toUTCString() === date, others };
    };
    // /v1/objects: a state within one page is sent whole, a Content-Length; none with ?kind=Node; a stream: /v1/watch.
    for (const path of ["/healthz", "/readyz", "/v1/updates", "/nope", "/v1/objects", "/v1/objects?kind=Node"]) {
      const get = await answer("GET", path);
      expect([path, get.date, get.others["content-length"]]).toEqual([path, true, expect.stringMatching(/^[1-9]/)]);
      expect([path, await answer("HEAD", path)]).toEqual([path, get]);
    }
    for (const path of ["/v1/watch", "/metrics"]) {
      const [get, head] = [await answer("GET", path), await answer("HEAD", path)];
      // The metrics move between two requests (the loop's lag, the requests counted): a length, not the GET's.
      const length = path === "/metrics" ? expect.stringMatching(/^[1-9]\d{2,}$/) : undefined;
      expect([path, head]).toEqual([path, { date: true, others: { ...get.others, "content-length": length } }]);
    }
    expect((await answer("GET", "/v1/watch")).others["transfer-encoding"]).toBe("chunked");
  });

  // Bun's bound on a request's line and headers together, before any route (README, Errors: 431).
  test("a request head over 16 KiB is Bun's 431, no body, never a 500; one just under it is answered", async () => {
    const th = await host({});
    const withParameters = (length: number) => `/v1/objects?${"a=1&".repeat(length / 4)}`;
    const status = async (path: string, headers: Record<string, string> = {}) =>
      (await fetch(`${th.url}${path}`, { headers })).status;
    expect(await status(withParameters(16_000))).toBe(200);
    expect(await status(withParameters(16_400))).toBe(431);
    expect(await status("/healthz", { "x-big": "a".repeat(16_400) })).toBe(431);
    const refused = await fetch(`${th.url}${withParameters(16_400)}`);
    expect(await refused.text()).toBe("");
  });

  test("an unknown route is a JSON 404", async () => {
    const th = await host({});
    const response = await fetch(`${th.url}/nope`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "no route for GET /nope" });
  });

  test("a known route asked with another method is a JSON 405 saying which methods it takes", async () => {
    const th = await host({});
    for (const path of ["/v1/objects", "/v1/updates", "/v1/watch", "/healthz", "/metrics"]) {
      const response = await fetch(`${th.url}${path}`, { method: "POST" });
      expect([path, response.status, response.headers.get("allow")]).toEqual([path, 405, "GET, HEAD"]);
      expect(await response.json()).toEqual({ error: `POST is not allowed on ${path}: GET, HEAD` });
    }
  });

  test("so is a plugin's route with a path parameter; a path no route has stays a 404", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "hook.ts"), PARAM_ROUTES_PLUGIN);
    const th = await startTestHost({ dir, sinks: [{ type: "./hook.ts" }] });
    hosts.push(th);
    const ask = async (method: string, path: string) => {
      const response = await fetch(`${th.url}${path}`, { method });
      return [method, path, response.status, response.headers.get("allow")];
    };
    expect(await ask("POST", "/hooks/abc")).toEqual(["POST", "/hooks/abc", 200, null]);
    expect(await ask("GET", "/hooks/abc")).toEqual(["GET", "/hooks/abc", 405, "POST"]);
    expect(await ask("DELETE", "/hooks/abc/status")).toEqual(["DELETE", "/hooks/abc/status", 405, "GET, HEAD"]);
    expect(await ask("GET", "/hooks/abc/other")).toEqual(["GET", "/hooks/abc/other", 404, null]);
  });

  test("a HEAD on a plugin's GET route answers its headers, the type its Response gave itself included", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "hook.ts"), PARAM_ROUTES_PLUGIN);
    const th = await startTestHost({ dir, sinks: [{ type: "./hook.ts" }] });
    hosts.push(th);
    const answer = async (method: string, path: string) => {
      const { date, ...others } = await responseHeaders(th.url, `${method} ${path} HTTP/1.1`);
      // Each answer draws a boundary of its own.
      const type = others["content-type"]?.replace(/boundary=.*/, "boundary=…");
      return { date: new Date(date ?? "").toUTCString() === date, others: { ...others, "content-type": type } };
    };
    for (const [path, type] of [
      ["/hooks/abc/form", /^application\/x-www-form-urlencoded/],
      ["/hooks/abc/multipart", /^multipart\/form-data; boundary=/],
      ["/hooks/abc/blob", /^application\/json/],
      ["/hooks/abc/status", /^application\/json/],
      ["/hooks/abc/text", /^text\/plain/],
    ] as const) {
      const get = await answer("GET", path);
      expect([path, get.others["content-type"]]).toEqual([path, expect.stringMatching(type)]);
      expect([path, await answer("HEAD", path)]).toEqual([path, get]);
    }
  });
});
