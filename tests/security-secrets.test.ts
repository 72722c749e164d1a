/**
 * Issue 10, security: secrets never reach the logs, and HTTPS with a real client (the container's way of running:
 * tests/container-image.test.ts).
 *
 * One real kubemeta process (main.ts) with every secret set, each to a value found nowhere else: the HTTP tokens, a
 * webhook secret and `Authorization` header, NATS user/password and token (a real nats-server that requires them,
 * with one right and two wrong, and a password written in a server URL), the kubeconfig's bearer token (the
 * simulated API server, one right and one wrong). Every error path runs (401s in and out, webhook 500 and 401, NATS
 * authorization violations), then its whole output is searched for each secret, plain and base64. A remote libSQL
 * store with an auth token, unreachable, `--check` of an invalid config full of secrets, and `tail` given a NATS URL
 * with a password are separate short processes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { testPki } from "../simulator/certs.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir } from "../testing/index.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

/** Each secret distinctive, so that finding it anywhere in the output can mean only one thing. */
const SECRETS = {
  KM_HTTP_TOKEN: "httptoken-Zq81Lr0Wv5Kc2Xn7",
  KM_HTTP_TOKEN_NEXT: "httptoken-next-Pf4Hs9Dt3Gm6",
  KM_WEBHOOK_SECRET: "hooksecret-Vb7Ny2Qe8Jw1Ua4",
  KM_WEBHOOK_AUTH: "hookauth-Ck3Mz6Rt9Ld2Eo5",
  KM_NATS_PASSWORD: "natspassword-Hy5Tb8Sw2Fq7",
  KM_NATS_WRONG_PASSWORD: "natswrongpw-Xa1Oj4Ku7Ni3",
  KM_NATS_TOKEN: "natstoken-Wm9Rc6Pv3Bg8Zd",
  KM_NATS_URL_PASSWORD: "natsurlpw-Te6Gk1Xb9Mr4",
  KM_KUBE_TOKEN: "kubetoken-Qs2Lf5Yh8Tn1Ve",
  KM_KUBE_WRONG_TOKEN: "kubewrong-Jd7Gx4Cm1Ar6Wp",
  KM_LIBSQL_TOKEN: "libsqltoken-Ue3Ko8Bz5Hi2Sy",
} as const;

/** Every form a secret could take in a line: itself, base64 and base64url (Basic auth, kubeconfig `-data`). */
function leaks(output: string): string[] {
  const found: string[] = [];
  for (const [name, secret] of Object.entries(SECRETS)) {
    const forms = [secret, Buffer.from(secret).toString("base64"), Buffer.from(secret).toString("base64url")];
    forms.push(Buffer.from(`kubemeta:${secret}`).toString("base64"));
    for (const form of forms) {
      const at = output.indexOf(form);
      if (at >= 0) found.push(`${name} as ${form}: …${output.slice(Math.max(0, at - 200), at + 100)}…`);
    }
  }
  return found;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function dir(): Promise<string> {
  const path = await tempDir("kubemeta-secrets-");
  cleanups.push(() => rm(path, { recursive: true, force: true }));
  return path;
}

function spawnKubemeta(args: string[], cwd: string, env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, "run", MAIN, ...args], {
    cwd,
    env: { ...process.env, ...SECRETS, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => child.kill("SIGKILL"));
  return { child, stdout: new Output(child.stdout), stderr: new Output(child.stderr) };
}

describe("a full run with every secret set", () => {
  let api: TestApiServer;
  let nats: TestNatsServer;
  let run: ReturnType<typeof spawnKubemeta>;
  let url: string;
  let caPem: string;
  let caFile: string;
  const receivers: ReturnType<typeof Bun.serve>[] = [];

  beforeAll(async () => {
    const work = await dir();
    const pki = await testPki();
    ({ caPem, caFile } = pki);
    api = await startTestApiServer({ tokens: [SECRETS.KM_KUBE_TOKEN] });
    cleanups.push(() => api.stop());
    populate(api, { nodes: 2, podsPerNode: 3 });
    await api.writeKubeconfig(join(work, "right.kubeconfig"), "token");
    const wrong = api.kubeconfig("token").replace(SECRETS.KM_KUBE_TOKEN, SECRETS.KM_KUBE_WRONG_TOKEN);
    await writeFile(join(work, "wrong.kubeconfig"), wrong, { mode: 0o600 });

    nats = await startNatsServer({ auth: { user: "kubemeta", password: SECRETS.KM_NATS_PASSWORD } });
    cleanups.push(() => nats.destroy());

    // Receivers that fail: a 500, and a 401 that echoes the credentials it got, as some gateways' error pages do.
    const receiver = (fetch: (request: Request) => Response) => {
      const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
      receivers.push(server);
      cleanups.push(() => server.stop(true));
      return `http://127.0.0.1:${server.port}/hook`;
    };
    const failing = receiver(() => new Response("internal error", { status: 500 }));
    const refusing = receiver(
      (request) => new Response(`bad credentials: ${request.headers.get("authorization")}`, { status: 401 }),
    );

    const fast = { initial: "20ms", max: "100ms" };
    const webhook = (name: string, target: string) => ({
      type: "webhook",
      name,
      url: target,
      secret: "${KM_WEBHOOK_SECRET}",
      headers: { Authorization: "Bearer ${KM_WEBHOOK_AUTH}" },
      batch: { linger: "0ms" },
      retry: fast,
    });
    const natsSink = (name: string, auth: Record<string, string>) => ({
      type: "nats",
      name,
      servers: [nats.url],
      reconnect: fast,
      ...auth,
    });
    const config = {
      cluster: { name: "secrets" },
      log: { level: "debug" },
      store: { type: "libsql", url: `file:${join(work, "data", "kubemeta.db")}` },
      sources: [
        // Each its own resources: one watch in two sources is refused (tests/config-entries).
        { type: "kubernetes", name: "right-token", kubeconfig: join(work, "right.kubeconfig"), backoff: fast },
        {
          type: "kubernetes",
          name: "wrong-token",
          kubeconfig: join(work, "wrong.kubeconfig"),
          resources: ["ingresses"],
          backoff: fast,
        },
      ],
      sinks: [
        { type: "sse" },
        natsSink("nats-right", { user: "kubemeta", password: "${KM_NATS_PASSWORD}" }),
        natsSink("nats-wrong-password", { user: "kubemeta", password: "${KM_NATS_WRONG_PASSWORD}" }),
        natsSink("nats-token", { token: "${KM_NATS_TOKEN}" }),
        // Credentials in a server URL (not the server's): logged at start (servers), used to connect, refused.
        {
          ...natsSink("nats-url", {}),
          servers: [nats.url.replace("nats://", "nats://kubemeta:${KM_NATS_URL_PASSWORD}@")],
        },
        webhook("hook-500", failing),
        webhook("hook-401", refusing),
      ],
      http: {
        address: "127.0.0.1",
        port: 0,
        tokens: ["${KM_HTTP_TOKEN}", "${KM_HTTP_TOKEN_NEXT}"],
        tls: { cert: pki.serverCertFile, key: pki.serverKeyFile },
      },
    };
    await writeFile(join(work, "kubemeta.yaml"), Bun.YAML.stringify(config));
    run = spawnKubemeta(["--config", "kubemeta.yaml"], work);
    url = (await run.stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 20_000))[1]!.replace(/\/$/, "");
  });

  test("HTTPS with real clients: one with the CA gets through; one without it, or plain HTTP, does not", async () => {
    expect(url).toStartWith("https://127.0.0.1:");
    expect(await (await fetch(`${url}/healthz`, { tls: { ca: caPem } })).text()).toBe("ok\n");
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    const plain = url.replace("https://", "http://");
    const answer = await fetch(`${plain}/healthz`).then(
      (response) => response.status,
      () => "refused",
    );
    expect(answer).not.toBe(200);

    // curl is required here as by sse-slow and faults: without it this fails, rather than pass with half of it unrun.
    const curl = async (...args: string[]) => {
      const proc = Bun.spawn(["curl", "-sS", "--max-time", "5", ...args], { stdout: "pipe", stderr: "pipe" });
      const [code, body] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
      return { code, body };
    };
    const auth = ["-H", `Authorization: Bearer ${SECRETS.KM_HTTP_TOKEN}`];
    expect(await curl("--cacert", caFile, `${url}/healthz`)).toEqual({ code: 0, body: "ok\n" });
    const objects = await curl(
      "--cacert",
      caFile,
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      ...auth,
      `${url}/v1/updates`,
    );
    expect(objects).toEqual({ code: 0, body: "200" });
    expect((await curl(`${url}/healthz`)).code).toBe(60); // the certificate cannot be verified
    expect((await curl(`${plain}/healthz`)).code).not.toBe(0);
  }, 20_000);

  test("every error path runs, and no secret appears in stdout or stderr", async () => {
    const within = 15_000;
    await run.stdout.waitFor(/"msg":"connected to NATS"[^\n]*"sink":"nats-right"/, within);
    await run.stdout.waitFor(/"msg":"kubernetes source synced"[^\n]*"source":"right-token"/, within);
    await run.stdout.waitFor(
      /"msg":"NATS sink starting"(?=[^\n]*"sink":"nats-url")[^\n]*"nats:\/\/kubemeta:\*\*\*@/,
      within,
    );
    for (const sink of ["nats-wrong-password", "nats-token", "nats-url"])
      await run.stdout.waitFor(new RegExp(`"msg":"cannot connect to NATS; retrying"[^\\n]*"sink":"${sink}"`), within);
    await run.stdout.waitFor(/"msg":"list\/watch failed; retrying"[^\n]*"source":"wrong-token"[^\n]*401/, within);
    await run.stdout.waitFor(
      /"msg":"webhook delivery failed; retrying"[^\n]*"sink":"hook-500"[^\n]*"status":500/,
      within,
    );
    await run.stdout.waitFor(
      /"msg":"webhook delivery failed; retrying"[^\n]*"sink":"hook-401"[^\n]*"status":401/,
      within,
    );

    // Requests with wrong tokens, by header and by query (each containing a real token), then right ones.
    const get = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${url}${path}`, { tls: { ca: caPem }, headers });
    const wrong = `${SECRETS.KM_HTTP_TOKEN}-wrong`;
    expect((await get("/v1/objects", { authorization: `Bearer ${wrong}` })).status).toBe(401);
    expect((await get(`/v1/updates?stream=all&access_token=${wrong}`)).status).toBe(401);
    expect((await get(`/metrics?access_token=${encodeURIComponent(SECRETS.KM_HTTP_TOKEN_NEXT)}x`)).status).toBe(401);
    const basic = Buffer.from(`kubemeta:${SECRETS.KM_HTTP_TOKEN}`).toString("base64");
    expect((await get("/v1/watch", { authorization: `Basic ${basic}` })).status).toBe(401);
    // The wrong-token source never syncs this new store: /v1/objects waits for it (503), the log is there.
    expect((await get("/v1/objects?kind=Pod", { authorization: `Bearer ${SECRETS.KM_HTTP_TOKEN}` })).status).toBe(503);
    expect((await get("/v1/updates", { authorization: `Bearer ${SECRETS.KM_HTTP_TOKEN}` })).status).toBe(200);
    expect((await get(`/v1/updates?stream=all&access_token=${SECRETS.KM_HTTP_TOKEN_NEXT}`)).status).toBe(200);
    const metrics = await (await get("/metrics", { authorization: `Bearer ${SECRETS.KM_HTTP_TOKEN}` })).text();
    expect(leaks(metrics)).toEqual([]);

    run.child.kill("SIGTERM");
    expect(await exitWithin(run.child, 20_000)).toBe(0);
    const output = `${await run.stdout.all()}\n${await run.stderr.all()}`;
    // The run did log the failures whose messages could carry a secret, many times over.
    expect(run.stdout.lines("webhook delivery failed; retrying").length).toBeGreaterThan(2);
    expect(run.stdout.lines("cannot connect to NATS; retrying").length).toBeGreaterThan(2);
    expect(leaks(output)).toEqual([]);
    // The receiver that echoed the credentials is still heard, with them taken out.
    const details = run.stdout.lines("webhook delivery failed; retrying").map((line) => line.detail);
    expect(details).toContain("bad credentials: [redacted]");
  }, 40_000);
});

test("a remote libSQL store that cannot be reached: its auth token is in no line", async () => {
  const work = await dir();
  // A port that was free a moment ago: the connection is refused.
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  const store = `store: { type: libsql, url: "libsql://127.0.0.1:${port}", authToken: "\${KM_LIBSQL_TOKEN}" }\n`;
  await writeFile(
    join(work, "kubemeta.yaml"),
    `${store}sinks: [{ type: sse }]\nhttp: { address: 127.0.0.1, port: 0 }\n`,
  );
  for (const [args, said] of [
    [["--config", "kubemeta.yaml"], "store cannot be opened"],
    [
      ["--check", "--config", "kubemeta.yaml"],
      `invalid config:\n  store: cannot reach the libSQL server at 127.0.0.1:${port}`,
    ],
  ] as const) {
    const run = spawnKubemeta([...args], work);
    expect(await exitWithin(run.child, 15_000)).toBe(1);
    const output = `${await run.stdout.all()}\n${await run.stderr.all()}`;
    expect(output).toContain(said);
    expect(leaks(output)).toEqual([]);
  }
}, 20_000);

test("--check of an invalid config echoes none of its secrets, even where one stands in the wrong place", async () => {
  const work = await dir();
  const config = [
    'http: { tokens: "${KM_HTTP_TOKEN}" }', // a string where a list belongs
    'log: { level: "${KM_HTTP_TOKEN_NEXT}" }', // where a word from a list belongs: quoted by its error
    'store: { type: libsql, url: "file:./data/k.db", authToken: ["${KM_LIBSQL_TOKEN}"] }',
    "sinks:",
    "  - type: webhook",
    "    url: ftp://receiver.example.com/",
    '    secret: { value: "${KM_WEBHOOK_SECRET}" }',
    '    headers: "Authorization: Bearer ${KM_WEBHOOK_AUTH}"',
    "  - type: nats",
    "    servers: []",
    '    token: "${KM_NATS_TOKEN}"',
    '    password: "${KM_NATS_PASSWORD}"',
    "  - type: nats",
    "    name: other",
    "    servers: [nats://127.0.0.1:1]",
    "    token: 4242424242424242", // an unquoted numeric token is a number
    '    tls: "${KM_NATS_TOKEN}"', // a string where an object belongs
    "  - type: nats",
    "    name: url",
    '    servers: ["nats://kubemeta:${KM_NATS_PASSWORD}@127.0.0.1:4222/subject"]', // quoted by its error
    "sources:",
    "  - type: kubernetes",
    '    kubeconfig: ["${KM_KUBE_TOKEN}"]',
  ].join("\n");
  await writeFile(join(work, "kubemeta.yaml"), config);
  const run = spawnKubemeta(["--check", "--config", "kubemeta.yaml"], work);
  expect(await exitWithin(run.child, 15_000)).toBe(1);
  const output = `${await run.stdout.all()}\n${await run.stderr.all()}`;
  const paths = ["http.tokens", "sinks[0].headers", "sinks[0].secret", "sinks[2].token", "sinks[2].tls"];
  for (const path of [...paths, "sources[0].kubeconfig"]) expect(output).toContain(`${path}:`);
  expect(output).toContain('log.level: Invalid type: Expected ("debug" | "info" | "warn" | "error") but received "${');
  expect(output).toContain('sinks[3].servers[0]: "nats://kubemeta:***@127.0.0.1:4222/subject" is not a NATS server');
  expect(output).not.toContain("4242424242424242");
  expect(leaks(output)).toEqual([]);
}, 20_000);

test("`tail` given a NATS URL with a password says which server it cannot reach, without the password", async () => {
  const work = await dir();
  const password = SECRETS.KM_NATS_URL_PASSWORD;
  const unreachable = spawnKubemeta(
    ["tail", "--nats", `nats://kubemeta:${password}@127.0.0.1:1`, "--cluster", "c"],
    work,
  );
  expect(await exitWithin(unreachable.child, 15_000)).toBe(1);
  const notAServer = spawnKubemeta(
    ["tail", "--nats", `nats://${password}@127.0.0.1:1/subject`, "--cluster", "c"],
    work,
  );
  expect(await exitWithin(notAServer.child, 15_000)).toBe(2);
  const output = [unreachable, notAServer].map(async (run) => `${await run.stdout.all()}\n${await run.stderr.all()}`);
  const [first, second] = await Promise.all(output);
  expect(first).toContain("cannot connect to NATS at nats://kubemeta:***@127.0.0.1:1");
  expect(second).toContain('--nats: "nats://***@127.0.0.1:1/subject" is not a NATS server');
  expect(leaks(`${first}\n${second}`)).toEqual([]);
}, 20_000);

test("a Secret's content where its file's path belongs (kubeconfig, .creds, seed): refused, not quoted", async () => {
  // Read as a path, it was quoted by the failed read: `--check`, the log, and the open /readyz printed the kubeconfig.
  const work = await dir();
  const seed = `SU${"A".repeat(56)}`;
  const env = {
    KM_KUBECONFIG: `apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: ${SECRETS.KM_KUBE_TOKEN}}\n`,
    KM_CREDS: [
      "-----BEGIN NATS USER JWT-----",
      `eyJ0eXAiOiJKV1QifQ.${SECRETS.KM_NATS_TOKEN}.x`,
      "------END NATS USER JWT------",
    ].join("\n"),
    KM_SEED: seed,
  };
  const config = [
    "sources: [{ type: kubernetes, kubeconfig: ${KM_KUBECONFIG} }]",
    "sinks:",
    "  - { type: nats, servers: [nats://127.0.0.1:1], credsFile: ${KM_CREDS} }",
    "  - { type: nats, name: b, servers: [nats://127.0.0.1:1], nkeySeedFile: ${KM_SEED} }",
    'store: { type: libsql, url: "file:./data/k.db" }',
    "http: { address: 127.0.0.1, port: 0 }",
  ].join("\n");
  await writeFile(join(work, "kubemeta.yaml"), config);
  for (const args of [["--check"], []]) {
    const run = spawnKubemeta([...args, "--config", "kubemeta.yaml"], work, env);
    expect(await exitWithin(run.child, 15_000)).toBe(1);
    const output = `${await run.stdout.all()}\n${await run.stderr.all()}`;
    for (const path of ["sources[0].kubeconfig", "sinks[0].credsFile", "sinks[1].nkeySeedFile"])
      expect(output).toContain(`${path}: holds what a file holds`);
    expect(output).not.toContain(seed);
    expect(leaks(output)).toEqual([]);
  }
}, 20_000);
