/**
 * A configured URL may carry a secret in its query (`?authToken=`, libSQL's own way to pass its token) or its
 * userinfo: wherever kubemeta shows such a URL (a config error, a start's log lines, `/readyz`), the query's values
 * and the password are hidden, as `nats://user:***@host` already was.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { kubeconfig as kubeconfigYaml } from "./kubeconfig-fixtures.ts";
import { exitWithin, runMain, spawnMain } from "./reliability-process.ts";

const SECRETS = {
  KM_STORE_PASSWORD: "storepw-Nf3Hx8Rk1Lq6",
  KM_STORE_TOKEN: "storetoken-Pw5Gy2Tc9Bd4",
  KM_NATS_TOKEN: "natstoken-Ey7Vm4Zj1Sa8",
  KM_NATS_LIST_TOKEN: "natslist-Hq4Dn7Xb2Rf5",
};
const KUBE_QUERY_TOKEN = "kubequery-Ui2Ko6Qn9Wc3";

/** Each test runs kubemeta, a second or two on a loaded machine, and waits for it up to 15 s. */
setDefaultTimeout(30_000);
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function workDir(): Promise<string> {
  const dir = await tempDir("kubemeta-url-secrets-");
  dirs.push(dir);
  return dir;
}

function expectNoSecret(output: string): void {
  for (const secret of [...Object.values(SECRETS), KUBE_QUERY_TOKEN]) expect(output).not.toContain(secret);
}

test("--check of a store url kubemeta does not support quotes it with its password and query hidden", async () => {
  const dir = await workDir();
  const config = join(dir, "kubemeta.yaml");
  // Written as it is (a ConfigMap's): a `${VAR}`'s value is said as the variable's name already.
  const { KM_STORE_PASSWORD: password, KM_STORE_TOKEN: token } = SECRETS;
  const url = `postgres://kubemeta:${password}@db.example/k?sslmode=require&authToken=${token}`;
  await Bun.write(config, `store: { type: libsql, url: "${url}" }\n`);
  const result = await runMain(["--check", "--config", config], { cwd: dir });
  expect(result.code).toBe(1);
  expectNoSecret(result.stdout + result.stderr);
  expect(result.stderr).toContain(
    'store.url: unsupported store url "postgres://kubemeta:***@db.example/k?sslmode=***&authToken=***": use file:',
  );
});

test("--check of a remote store url that is no URL, or has a fragment, refuses it quoting none of it", async () => {
  const dir = await workDir();
  const config = join(dir, "kubemeta.yaml");
  const { KM_STORE_PASSWORD: password, KM_STORE_TOKEN: token } = SECRETS;
  for (const [url, said] of [
    [`https://kubemeta:${password}@db example:8080/?authToken=${token}`, "must be a URL (a space in it, or a port"],
    [`libsql://db.example:8080/?authToken=${token}#${password}`, "a remote store url takes no fragment (#…)"],
  ]) {
    await Bun.write(config, `store: { type: libsql, url: "${url}" }\n`);
    const result = await runMain(["--check", "--config", config], { cwd: dir });
    expect(result.code).toBe(1);
    expectNoSecret(result.stdout + result.stderr);
    expect(result.stderr).toContain(`  store.url: ${said}`);
  }
});

test("a start's lines naming the API server and the NATS servers hide their query's values", async () => {
  const dir = await workDir();
  const kubeconfig = join(dir, "kubeconfig");
  await Bun.write(
    kubeconfig,
    kubeconfigYaml({
      clusters: { c: { server: `https://127.0.0.1:1/?token=${KUBE_QUERY_TOKEN}` } },
      users: { u: { token: "t" } },
      contexts: { c: { cluster: "c", user: "u" } },
      current: "c",
    }),
  );
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      `store: { type: libsql, url: "file:${join(dir, "k.db")}" }`,
      `sources: [{ type: kubernetes, kubeconfig: ${kubeconfig}, resources: [pods] }]`,
      'sinks: [{ type: nats, servers: ["nats://127.0.0.1:1?authToken=${KM_NATS_TOKEN}"] }]',
      "http: { address: 127.0.0.1, port: 0 }",
    ].join("\n"),
  );
  const { child, stdout, stderr } = spawnMain(["--config", config], { cwd: dir, env: SECRETS });
  try {
    const [listening, starting, nats] = await Promise.all(
      ["http listening", "kubernetes source starting", "NATS sink starting"].map(async (msg) => {
        const [, line] = await stdout.waitFor(new RegExp(`^(\\{"level[^\\n]*"msg":"${msg}".*)\\n`, "m"), 15_000);
        return JSON.parse(line!) as Record<string, unknown>;
      }),
    );
    expect(starting?.server).toBe("https://127.0.0.1:1/?token=***");
    expect(nats?.servers).toEqual(["nats://127.0.0.1:1?authToken=***"]);
    const readyz = await (await fetch(new URL("/readyz", String(listening?.url)))).text();
    expectNoSecret(readyz);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await exitWithin(child, 15_000)).toBe(0);
  expectNoSecret((await stdout.all()) + (await stderr.all()));
});

test("several NATS URLs as one server (a comma or space list): refused, quoting none of their tokens", async () => {
  const dir = await workDir();
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(config, 'sinks: [{ type: nats, servers: ["${NATS_URL}"] }]\n');
  const token = SECRETS.KM_NATS_LIST_TOKEN;
  const env = { NATS_URL: `nats://${token}@a:4222,nats://${token}@b:4222` };
  const check = await runMain(["--check", "--config", config], { cwd: dir, env });
  const tail = await runMain(["tail", "--nats", `nats://${token}@a:4222 nats://${token}@b:4222`, "--cluster", "c"]);
  // Was: `"nats://<token>@a:***@b:4222" is not a NATS server`, the first URL's token taken for a user name.
  expect(check.stderr).toContain('sinks[0].servers[0]: "nats://***@b:4222" is not a NATS server');
  expect(tail.stderr).toContain('--nats: "nats://***@b:4222" is not a NATS server');
  expectNoSecret(check.stdout + check.stderr + tail.stdout + tail.stderr);
});
