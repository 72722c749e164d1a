/**
 * A credential the config sends over a network unencrypted is warned of, as a listener anyone can read is: a webhook
 * `Authorization` header (or the url's user and password, a `?token=`), a remote store's `authToken`, a kubeconfig's
 * token, the Lease's too, each over `http://` to a host not on this machine. One line each, at start and in `--check`,
 * naming the key and never the credential; none for loopback, `https://` or a `libsql://` url (TLS).
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { kubeconfig as kubeconfigYaml } from "./kubeconfig-fixtures.ts";
import { exitWithin, runMain, spawnMain } from "./reliability-process.ts";
import { spawnTail } from "./tail-process.ts";

/** TEST-NET-2 (RFC 5737): no host has it, so nothing is sent; the warnings come of the config alone. */
const REMOTE = "198.51.100.7";
const SECRETS = {
  KM_HOOK_AUTH: "hookauth-Rb4Wn8Kq2Xs6",
  KM_HOOK_PASSWORD: "hookpw-Lc9Tz3Vf7Ym1",
  KM_LIBSQL_TOKEN: "libsqltoken-Gh5Pd1Ne8Ju3",
  KM_KUBE_TOKEN: "kubetoken-Ak6Mw2Cs9Qo4",
};

/** Each test runs kubemeta (or tail) a few times, each a second or two on a loaded machine. */
setDefaultTimeout(30_000);
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/**
 * A config with each credential sent to `host`: over `scheme` to the kubeconfig's server and the webhook, to the store
 * over `http://` (`libsql://`, TLS, with `https`); `cluster`, more of the kubeconfig's cluster.
 */
async function configAt(host: string, scheme = "http", cluster = {}): Promise<{ dir: string; config: string }> {
  const dir = await tempDir("kubemeta-clear-text-");
  dirs.push(dir);
  const kubeconfig = join(dir, "kubeconfig");
  await Bun.write(
    kubeconfig,
    kubeconfigYaml({
      clusters: { prod: { server: `${scheme}://${host}:6443`, ...cluster } },
      users: { admin: { token: SECRETS.KM_KUBE_TOKEN } },
      contexts: { c: { cluster: "prod", user: "admin" } },
      current: "c",
    }),
  );
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      `store: { type: libsql, url: "${scheme === "https" ? "libsql" : "http"}://${host}:1", timeout: 1s,`,
      '  authToken: "${KM_LIBSQL_TOKEN}" }',
      `ha: { enabled: true, kubeconfig: ${kubeconfig} }`,
      `sources: [{ type: kubernetes, kubeconfig: ${kubeconfig}, resources: [pods] }]`,
      "sinks:",
      "  - type: webhook",
      `    url: "${scheme}://hook:\${KM_HOOK_PASSWORD}@${host}:9/in"`,
      "    secret: a-signing-secret",
      '    headers: { Authorization: "Bearer ${KM_HOOK_AUTH}", X-Tenant: blue }',
      "http: { port: 0 }",
    ].join("\n"),
  );
  return { dir, config };
}

function expectNoSecret(output: string): void {
  for (const secret of Object.values(SECRETS)) expect(output).not.toContain(secret);
}

const UNCHECKED =
  `kubeconfig {dir}/kubeconfig: user "admin" sends its credentials to cluster "prod" at ${REMOTE}:6443 with ` +
  "insecure-skip-tls-verify, so to whoever answers there: anyone on the network path reads them; give the cluster " +
  "its certificate-authority";
const PROXY =
  `kubeconfig {dir}/kubeconfig: cluster "prod"'s proxy-url sends its user and password to ${REMOTE}:3128 over ` +
  "http://, unencrypted: anyone on the network path reads them";
const KUBE = (host: string) =>
  `kubeconfig {dir}/kubeconfig: user "admin" sends its credentials to cluster "prod" at ${host}:6443 over http://, ` +
  "unencrypted: anyone on the network path reads them; give the cluster an https:// server";
const STORE = (host: string) =>
  `authToken sent to ${host}:1 unencrypted (no TLS): anyone on the network path reads them; use an https://, ` +
  "wss:// or libsql:// url (without ?tls=0)";
const HOOK = (host: string) =>
  `headers.Authorization, the url's user and password sent to ${host}:9 over http://, unencrypted: anyone on the ` +
  "network path reads them; use an https:// url";

test("--check warns of each credential sent unencrypted to another host, naming its key, never its value", async () => {
  const { dir, config } = await configAt(REMOTE);
  const result = await runMain(["--check", "--config", config], { cwd: dir, env: SECRETS });
  expectNoSecret(result.stdout + result.stderr);
  const warnings = result.stderr
    .split("\n")
    .filter((line) => line.startsWith("kubemeta: warning: "))
    .map((line) => line.slice("kubemeta: warning: ".length).replaceAll(dir, "{dir}"));
  expect(warnings.sort()).toEqual(
    [
      `store: ${STORE(REMOTE)}`,
      `sources[0]: ${KUBE(REMOTE)}`,
      `sinks[0]: ${HOOK(REMOTE)}`,
      `ha.kubeconfig: ${KUBE(REMOTE)}`,
    ].sort(),
  );
  // The store at that address cannot be reached: its check fails, the warnings said all the same.
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("  store: cannot reach the libSQL server at");
});

test("a start logs the same warnings, each through its plugin's logger, before the store is opened", async () => {
  const { dir, config } = await configAt(REMOTE);
  const { child, stdout, stderr } = spawnMain(["--config", config], { cwd: dir, env: SECRETS });
  // The store cannot be reached: the start fails once its `timeout` (1 s) is out.
  expect(await exitWithin(child, 20_000)).toBe(1);
  const output = (await stdout.all()) + (await stderr.all());
  expectNoSecret(output);
  const warned = output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.level === "warn" && String(line.msg).includes("unencrypted"))
    .map(({ level: _, time: __, msg, ...fields }) => ({ msg: String(msg).replaceAll(dir, "{dir}"), fields }));
  expect(warned).toEqual([
    { msg: STORE(REMOTE), fields: { store: "libsql" } },
    { msg: KUBE(REMOTE), fields: { source: "kubernetes" } },
    { msg: HOOK(REMOTE), fields: { sink: "webhook" } },
    { msg: `ha.kubeconfig: ${KUBE(REMOTE)}`, fields: {} },
  ]);
  expect(stdout.lines("store cannot be opened")).toHaveLength(1);
});

test.each([
  ["127.0.0.1", "http"],
  ["localhost", "http"],
  ["[::1]", "https"],
  [REMOTE, "https"],
])("no warning for credentials sent to %s over %s", async (host, scheme) => {
  // On loopback, a certificate not checked (insecure-skip-tls-verify) is not warned of either, nor an http:// proxy.
  const local = {
    "insecure-skip-tls-verify": true,
    "proxy-url": `http://proxy:${SECRETS.KM_HOOK_PASSWORD}@${host}:3128`,
  };
  const { dir, config } = await configAt(host, scheme, host === REMOTE ? {} : local);
  const result = await runMain(["--check", "--config", config], { cwd: dir, env: SECRETS });
  expectNoSecret(result.stdout + result.stderr);
  expect(result.stderr).not.toContain("kubemeta: warning:");
});

test("a token to a server whose certificate is unchecked, a proxy-url's password over http://: warned", async () => {
  const proxy = `http://proxy:${SECRETS.KM_HOOK_PASSWORD}@${REMOTE}:3128`;
  const { dir, config } = await configAt(REMOTE, "https", { "insecure-skip-tls-verify": true, "proxy-url": proxy });
  const result = await runMain(["--check", "--config", config], { cwd: dir, env: SECRETS });
  expectNoSecret(result.stdout + result.stderr);
  const warnings = result.stderr.split("\n").filter((line) => line.startsWith("kubemeta: warning: "));
  expect(warnings.map((line) => line.replaceAll(dir, "{dir}"))).toEqual([
    `kubemeta: warning: sources[0]: ${UNCHECKED}`,
    `kubemeta: warning: sources[0]: ${PROXY}`,
    `kubemeta: warning: ha.kubeconfig: ${UNCHECKED}`,
    `kubemeta: warning: ha.kubeconfig: ${PROXY}`,
  ]);
});

test("tail --url over http:// to another host with a token or a password warns; to loopback or https not", async () => {
  const token = { KUBEMETA_TOKEN: SECRETS.KM_KUBE_TOKEN };
  const warned = async (url: string, env: Record<string, string>) => {
    const tail = spawnTail(["--url", url, "--stream", "all"], env);
    try {
      // The warning comes before the first request, whose failure is said next.
      await tail.until(() => /GET .*v1\/watch/.test(tail.stderr), "the first request's failure on stderr", 15_000);
    } finally {
      await tail.stop("SIGTERM");
    }
    expectNoSecret(tail.stderr);
    return tail.stderr.split("\n").filter((line) => line.includes("warning"));
  };
  const warning = (sent: string) =>
    `kubemeta tail: warning: ${sent} sent to ${REMOTE}:1 over http://, unencrypted: anyone on the path reads it`;
  expect(await warned(`http://${REMOTE}:1`, token)).toEqual([warning("the token")]);
  const password = `http://tail:${SECRETS.KM_HOOK_PASSWORD}@${REMOTE}:1`;
  expect(await warned(password, {})).toEqual([warning("the url's user and password")]);
  expect(await warned("http://127.0.0.1:1", token)).toEqual([]);
  expect(await warned(`https://${REMOTE}:1`, token)).toEqual([]);
});

test("a libsql:// url with ?tls=0 is plain HTTP: a token in its query is warned of", async () => {
  const dir = await tempDir("kubemeta-clear-text-");
  dirs.push(dir);
  const config = join(dir, "kubemeta.yaml");
  const url = `libsql://${REMOTE}:1?tls=0&authToken=\${KM_LIBSQL_TOKEN}`;
  await Bun.write(config, `store: { type: libsql, url: "${url}", timeout: 1s }\n`);
  const result = await runMain(["--check", "--config", config], { cwd: dir, env: SECRETS });
  expectNoSecret(result.stdout + result.stderr);
  expect(result.stderr.split("\n").filter((line) => line.includes("warning"))).toEqual([
    `kubemeta: warning: store: ${STORE(REMOTE).replace("authToken", "the url's ?authToken=")}`,
  ]);
});

test("--check loads no kubeconfig the config does not name for its warnings: KUBECONFIG is not the pod's", async () => {
  const { dir } = await configAt(REMOTE);
  const config = join(dir, "unnamed.yaml");
  // "key" as a word of a header's name says a credential (X-Api-Key; camelCase: AccessKey, as Bunny's API has it),
  // not inside another word (X-Monkey).
  const headers = '{ Authorization: "${KM_HOOK_AUTH}", X-Api-Key: k, AccessKey: k, X-Monkey: banana }';
  await Bun.write(
    config,
    [
      'store: { type: libsql, url: "http://127.0.0.1:1", timeout: 1s }',
      "ha: { enabled: true }",
      "sources: [{ type: kubernetes, resources: [pods] }]",
      `sinks: [{ type: webhook, url: "http://${REMOTE}:9/in?accessKey=k&monkey=m", secret: 0123456789abcdef,` +
        ` headers: ${headers} }]`,
      "http: { port: 0 }",
    ].join("\n"),
  );
  const env = { ...SECRETS, KUBECONFIG: join(dir, "kubeconfig") };
  const result = await runMain(["--check", "--config", config], { cwd: dir, env });
  expectNoSecret(result.stdout + result.stderr);
  // Was: this machine's KUBECONFIG warned of at sources[0] and ha, which the pod never reads (README, "Commands").
  expect(result.stderr.split("\n").filter((line) => line.startsWith("kubemeta: warning: "))).toEqual([
    "kubemeta: warning: sinks[0]: headers.Authorization, headers.X-Api-Key, headers.AccessKey, the url's " +
      "?accessKey= sent to 198.51.100.7:9 over http://, unencrypted: anyone on the network path reads them; use an " +
      "https:// url",
  ]);
});

// The source's start, after the store opens (a file); the Lease's before (a store it cannot reach: then it stops).
test.each([
  ["the source", "", { source: "kubernetes" }, ""],
  ["the Lease", 'ha: { enabled: true }\nstore: { type: libsql, url: "http://127.0.0.1:1", timeout: 1s }', {}, "ha: "],
])("a start warns of %s's credentials sent in clear from the KUBECONFIG it loads, named by no key", async (...row) => {
  const [, ha, fields, prefix] = row;
  const { dir } = await configAt(REMOTE);
  const config = join(dir, "unnamed.yaml");
  const store = ha ? "" : `store: { type: libsql, url: "file:${join(dir, "store.db")}" }`;
  const lines = [store, ha, "sources: [{ type: kubernetes, resources: [pods] }]", "http: { port: 0 }"];
  await Bun.write(config, lines.join("\n"));
  const kubeconfig = join(dir, "kubeconfig");
  const { child, stdout } = spawnMain(["--config", config], { cwd: dir, env: { ...SECRETS, KUBECONFIG: kubeconfig } });
  try {
    // Unlike --check's, a start's kubeconfig is the one it sends the credentials with: this machine's, out of a pod.
    const warning = `${prefix}${KUBE(REMOTE)}`.replace(
      "kubeconfig {dir}/kubeconfig",
      `kubeconfig KUBECONFIG=${kubeconfig}`,
    );
    await stdout.waitFor(/"level":"warn".*unencrypted/, 15_000);
    const warned = () => stdout.lines(warning).map(({ level: _, time: __, msg: ___, ...rest }) => rest);
    expect(warned()).toEqual([fields]);
  } finally {
    child.kill("SIGTERM");
    await exitWithin(child, 10_000);
  }
  expectNoSecret(stdout.text);
});
