/**
 * Issue 10: tokens guard every path but the probes, routes that plugins mount outside /v1
 * included; a listener that anyone on the network reaches, without tokens or with tokens but no TLS, says so.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { rawRequest, responseHeaders } from "./security-raw.ts";
import { runMain } from "./reliability-process.ts";
import { testPki } from "../simulator/certs.ts";

const TOKEN = "security-token-0123456789abcdef";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

/** A sink plugin, loaded by path as any outside plugin is, that mounts a route outside /v1. */
const HOOK_PLUGIN = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "hook",
  description: "Mounts GET /hooks/status.",
  schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      ctx.http.get("/hooks/status", (c) => c.json({ secret: "plugin data" }));
    },
    async stop() {},
  }),
});
`;

test("a plugin's route outside /v1 needs the token; only /healthz and /readyz stay open", async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "hook.ts"), HOOK_PLUGIN);
  const th = await startTestHost({ dir, sinks: [{ type: "./hook.ts" }, { type: "sse" }], http: { tokens: [TOKEN] } });
  hosts.push(th);
  const status = async (path: string, token?: string) =>
    (await fetch(`${th.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).status;

  for (const path of ["/hooks/status", "/v1/objects", "/metrics", "/elsewhere", "/healthz/", "/readyz/x"]) {
    expect([path, await status(path)]).toEqual([path, 401]);
  }
  expect(await status("/hooks/status", TOKEN)).toBe(200);
  expect(await (await fetch(`${th.url}/hooks/status?access_token=${TOKEN}`)).json()).toEqual({
    secret: "plugin data",
  });
  expect(await status("/elsewhere", TOKEN)).toBe(404);
  expect(await status("/healthz")).toBe(200);
  expect(await status("/readyz")).toBe(200);
});

test("a malformed Bearer header is 400 invalid_request (RFC 6750 §3.1); a wrong token 401 invalid_token", async () => {
  const th = await startTestHost({ http: { tokens: [TOKEN] } });
  hosts.push(th);
  const answer = async (authorization: string) => {
    const exchange = await rawRequest(th.url, `GET /v1/objects HTTP/1.1\r\nAuthorization: ${authorization}`);
    try {
      await waitFor(() => exchange.text().endsWith("}"), 5000, `the answer to ${authorization}`);
    } finally {
      exchange.close();
    }
    const [head, body] = exchange.text().split("\r\n\r\n") as [string, string];
    const challenge = /^www-authenticate: (.*)$/im.exec(head)?.[1];
    return [Number(head.slice(9, 12)), challenge, (JSON.parse(body) as { error: string }).error];
  };
  const malformed = [
    400,
    'Bearer realm="kubemeta", error="invalid_request"',
    "malformed Authorization header: send Bearer and one token of printable ASCII without spaces",
  ];
  for (const header of ["Bearer", "bearer   ", `Bearer ${TOKEN} ${TOKEN}`, `Bearer ${TOKEN}\u00e9`, "Bearer \u00e9"])
    expect([header, ...(await answer(header))]).toEqual([header, ...malformed]);
  expect(await answer("Bearer wrong-token-0123456789")).toEqual([
    401,
    'Bearer realm="kubemeta", error="invalid_token"',
    "invalid bearer token",
  ]);
  // Another scheme is no bearer token at all, nor is a word that only starts like the scheme.
  for (const header of ["Basic dXNlcjpwYXNz", `Bearer${TOKEN}`])
    expect(await answer(header)).toEqual([401, 'Bearer realm="kubemeta"', "missing bearer token"]);
  expect((await answer(`bearer  ${TOKEN}`))[0]).toBe(200);
});

test("a token sent both ways, or an empty access_token, is 400 invalid_request (RFC 6750 §2, §3.1)", async () => {
  const th = await startTestHost({ http: { tokens: [TOKEN] } });
  hosts.push(th);
  const answer = async (query: string, authorization?: string) => {
    const response = await fetch(`${th.url}/v1/objects${query}`, {
      headers: authorization ? { authorization } : {},
    });
    const { error } = (await response.json()) as { error: string };
    return [response.status, response.headers.get("www-authenticate"), error];
  };
  const invalidRequest = (error: string) => [400, 'Bearer realm="kubemeta", error="invalid_request"', error];
  const twice = invalidRequest("the token came twice: send it in the Authorization header or as access_token");
  expect(await answer(`?access_token=${TOKEN}`, `Bearer ${TOKEN}`)).toEqual(twice);
  expect(await answer("?access_token=other-token-0123", `Bearer ${TOKEN}`)).toEqual(twice);
  expect(await answer("?access_token=")).toEqual(
    invalidRequest("empty access_token: send one token of printable ASCII without spaces"),
  );
  // Another scheme (a proxy's Basic) is no bearer token: the query's is the one.
  expect((await answer(`?access_token=${TOKEN}`, "Basic dXNlcjpwYXNz"))[0]).toBe(200);
});

test("no answer is for a cache to store (no-store, the stream's no-cache), nor for sniffing: nosniff", async () => {
  const th = await startTestHost({ sinks: [{ type: "sse" }], http: { tokens: [TOKEN], corsOrigins: ["*"] } });
  hosts.push(th);
  const cacheHeaders = async (request: string) => {
    const headers = await responseHeaders(th.url, request);
    return [request, headers["cache-control"], headers["x-content-type-options"]];
  };
  // The token in the query leaves no Authorization header, which alone keeps a shared cache from storing the answer.
  for (const path of ["/v1/objects", "/v1/updates", "/metrics", "/elsewhere"]) {
    for (const request of [`GET ${path}?access_token=${TOKEN} HTTP/1.1`, `HEAD ${path}?access_token=${TOKEN} HTTP/1.1`])
      expect(await cacheHeaders(request)).toEqual([request, "no-store", "nosniff"]);
  }
  for (const request of ["GET /v1/objects HTTP/1.1", "OPTIONS /v1/objects HTTP/1.1\r\nOrigin: https://a.example"])
    expect(await cacheHeaders(request)).toEqual([request, "no-store", "nosniff"]);
  const watch = `GET /v1/watch?access_token=${TOKEN} HTTP/1.1`;
  expect(await cacheHeaders(watch)).toEqual([watch, "no-cache", "nosniff"]);
});

test("a loopback listener without tokens answers no Host but its own: a rebound DNS name is 403", async () => {
  const statusFor = async (th: TestHost, host: string, path = "/v1/objects") => {
    const exchange = await rawRequest(th.url, `GET ${path} HTTP/1.1\r\nHost: ${host}`, { withoutHost: true });
    try {
      return [host, await exchange.status()];
    } finally {
      exchange.close();
    }
  };
  const port = (th: TestHost) => new URL(th.url).port;
  const open = await startTestHost({ http: { address: "localhost" } });
  hosts.push(open);
  for (const host of ["rebind.attacker.example", "127.0.0.1.attacker.example", "localhost.attacker.example"])
    for (const path of ["/v1/objects", "/healthz"])
      expect(await statusFor(open, `${host}:${port(open)}`, path)).toEqual([`${host}:${port(open)}`, 403]);
  for (const host of ["127.0.0.1", "[::1]", "localhost", "LOCALHOST.", "ui.localhost", "127.0.0.1:9"])
    expect(await statusFor(open, host)).toEqual([host, 200]);

  // With tokens the page has none to send; on an address others reach, anyone reads it anyway (a warning at start).
  const guarded = await startTestHost({ http: { tokens: [TOKEN] } });
  const everywhere = await startTestHost({ http: { address: "0.0.0.0" } });
  hosts.push(guarded, everywhere);
  expect(await statusFor(guarded, "rebind.attacker.example", `/v1/objects?access_token=${TOKEN}`)).toEqual([
    "rebind.attacker.example",
    200,
  ]);
  expect(await statusFor(everywhere, "kubemeta.monitoring.svc")).toEqual(["kubemeta.monitoring.svc", 200]);
});

async function startWarnings(http: Record<string, unknown>): Promise<string[]> {
  const logged: { level: string; msg: string }[] = [];
  const th = await startTestHost({
    http,
    logger: createLogger({ write: (line) => void logged.push(JSON.parse(line)) }),
  });
  hosts.push(th);
  return logged.filter((line) => line.level === "warn" && /^http[ .]/.test(line.msg)).map((line) => line.msg);
}

const CLEAR_TOKENS =
  "http.tokens: clients send their token to 0.0.0.0 over http://, unencrypted: anyone on the network path reads it; " +
  "set http.tls, or put a TLS-terminating proxy or mesh in front";

test("tokens on a non-loopback listener without tls warn at start and in --check; with tls not", async () => {
  expect(await startWarnings({ address: "127.0.0.1", tokens: [TOKEN] })).toEqual([]);
  const pki = await testPki();
  const tls = { cert: join(pki.dir, "server.crt"), key: join(pki.dir, "server.key") };
  expect(await startWarnings({ address: "0.0.0.0", tokens: [TOKEN], tls })).toEqual([]);

  const dir = await tempDir();
  const config = join(dir, "kubemeta.yaml");
  await writeFile(config, `http: { address: 0.0.0.0, tokens: ["${TOKEN}"] }\n`);
  const checked = await runMain(["--check", "--config", config], { cwd: dir });
  expect(checked.code).toBe(0);
  expect(checked.stderr).toContain(`kubemeta: warning: ${CLEAR_TOKENS}\n`);
  expect(checked.stderr).not.toContain(TOKEN);
  await writeFile(config, `http: { address: 0.0.0.0, tokens: ["${TOKEN}"], tls: ${JSON.stringify(tls)} }\n`);
  expect((await runMain(["--check", "--config", config], { cwd: dir })).stderr).not.toContain("http.tokens");
});

test("a non-loopback listener without tokens warns at start; with tokens, of them in clear", async () => {
  expect(await startWarnings({ address: "0.0.0.0" })).toEqual([
    "http has no tokens on a non-loopback address: anyone who reaches the port reads the cluster",
  ]);
  expect(await startWarnings({ address: "0.0.0.0", tokens: [TOKEN] })).toEqual([CLEAR_TOKENS]);
  expect(await startWarnings({ address: "127.0.0.1" })).toEqual([]);
});

test("--check warns of a listener others reach without tokens as a start does, exit 0; not on loopback", async () => {
  const dir = await tempDir();
  const config = join(dir, "kubemeta.yaml");
  const check = async (http: string) => {
    await writeFile(config, `sources: []\nsinks: [{ type: sse }]\n${http}`);
    // The check creates the default store, ./data/kubemeta.db: in the temp dir.
    const { code, stdout, stderr } = await runMain(["--check", "--config", config], { cwd: dir });
    return { code, stdout, stderr: stderr.replace("kubemeta: warning: no sources: nothing is watched\n", "") };
  };
  const open = (address: string) =>
    `kubemeta: warning: http has no tokens on a non-loopback address: anyone who reaches the port reads the cluster ` +
    `(${address}); set http.tokens, or http.address: 127.0.0.1\n`;
  const valid = { code: 0, stdout: "config is valid\n" };
  expect(await check("")).toEqual({ ...valid, stderr: open("0.0.0.0") });
  expect(await check("http: { address: '::' }\n")).toEqual({ ...valid, stderr: open("::") });
  for (const address of ["127.0.0.1", "localhost", "'[::1]'"])
    expect(await check(`http: { address: ${address} }\n`)).toEqual({ ...valid, stderr: "" });
  expect(await check(`http: { tokens: [${TOKEN}] }\n`)).toEqual({
    ...valid,
    stderr: `kubemeta: warning: ${CLEAR_TOKENS}\n`,
  });
}, 20_000);

test("every spelling of a loopback address is loopback: no warning; of every interface, a warning", async () => {
  const loopback = ["127.0.0.2", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "[::ffff:7f00:1]", "LOCALHOST"];
  for (const address of loopback) expect([address, await startWarnings({ address })]).toEqual([address, []]);
  for (const address of ["::", "[::]", "0:0:0:0:0:0:0:0"])
    expect([address, await startWarnings({ address })]).toEqual([
      address,
      ["http has no tokens on a non-loopback address: anyone who reaches the port reads the cluster"],
    ]);
});

interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: { template: { spec: { containers: Container[] } } };
}
interface Container {
  name: string;
  env?: {
    name: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string };
      resourceFieldRef?: { containerName: string; resource: string };
    };
  }[];
  readinessProbe?: { httpGet: { path: string } };
  livenessProbe?: { httpGet: { path: string } };
}

/** What deploy/kubemeta-ha.yaml's config reads besides the token: its store's Secret. */
const STORE_ENV = { LIBSQL_URL: "libsql://kubemeta-myorg.turso.io", LIBSQL_AUTH_TOKEN: "a-jwt-from-the-secret" };

test.each(["kubemeta.yaml", "kubemeta-ha.yaml"])(
  "deploy/%s: the shipped config takes its token from the Secret (its placeholder does not start); GC fits the limit",
  async (file) => {
    const deploy = join(import.meta.dir, "../deploy");
    const manifests = Bun.YAML.parse(await Bun.file(join(deploy, file)).text()) as Manifest[];
    const secret = Bun.YAML.parse(await Bun.file(join(deploy, "kubemeta-token.yaml")).text()) as Manifest;
    const [container] = manifests.find((m) => m.kind === "Deployment")!.spec!.template.spec.containers;
    const variable = container!.env!.find((e) => e.valueFrom?.secretKeyRef?.name === secret.metadata.name);
    expect(variable?.valueFrom?.secretKeyRef?.key).toBe(Object.keys(secret.stringData!)[0]!);
    // JavaScriptCore's GC sized to the container's memory limit, not the node's (README, "Memory in a container").
    expect(container!.env!.find((e) => e.name === "BUN_JSC_forceRAMSize")?.valueFrom?.resourceFieldRef).toEqual({
      containerName: container!.name,
      resource: "limits.memory",
    });
    expect([container!.readinessProbe?.httpGet.path, container!.livenessProbe?.httpGet.path]).toEqual([
      "/readyz",
      "/healthz",
    ]);

    const shipped = Bun.YAML.parse(manifests.find((m) => m.kind === "ConfigMap")!.data!["kubemeta.yaml"]!);
    const resolve = (token: string) =>
      resolveConfig(shipped, { baseDir: deploy, registry: builtins, env: { ...STORE_ENV, [variable!.name]: token } });
    expect((await resolve(TOKEN)).http.tokens).toEqual([TOKEN]);
    const placeholder = await resolve(Object.values(secret.stringData!)[0]!).catch((error: unknown) => error);
    expect(placeholder).toBeInstanceOf(ConfigError);
    expect((placeholder as ConfigError).issues.map((issue) => issue.path)).toEqual(["http.tokens[0]"]);
  },
);
