/** The `ha` section: what `--check` refuses and accepts, the durations' order, and the defaults a pod gives it. */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { SCHEMA_VERSION } from "../plugins/stores/libsql/schema.ts";
import { startHranaServer } from "./hrana-server.ts";
import { runMain } from "./reliability-process.ts";
import { startTestApiServer } from "../simulator/index.ts";

const REMOTE = { type: "libsql", url: "http://127.0.0.1:1" };
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function newDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-ha-"));
  dirs.push(dir);
  return dir;
}

/** `main.ts --check` as a process, in a temp dir (a `file:` store would be created there). */
async function check(yaml: string, env: Record<string, string> = {}, dir?: string) {
  dir ??= await newDir();
  await Bun.write(join(dir, "kubemeta.yaml"), yaml);
  return runMain(["--check", "--config", join(dir, "kubemeta.yaml")], { cwd: dir, env });
}

const resolve = (raw: unknown, env: Record<string, string> = {}) =>
  resolveConfig(raw, { baseDir: "/", registry: builtins, env });

/** A kubeconfig whose contexts are `contexts`, the first its current one. */
const kubeconfig = (contexts: string[]) =>
  [
    "apiVersion: v1",
    "kind: Config",
    `current-context: ${contexts[0]}`,
    "clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]",
    `contexts: [${contexts.map((name) => `{ name: ${name}, context: { cluster: c, user: u } }`).join(", ")}]`,
    "users: [{ name: u, user: { token: t } }]",
  ].join("\n");

async function issuesOf(raw: unknown, env: Record<string, string> = {}): Promise<string[]> {
  const error = await resolve(raw, env).catch((e: unknown) => e);
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error.issues.map((i) => `${i.path}: ${i.message}`);
}

describe("main.ts --check with ha", () => {
  test("refuses a file: store, naming ha.enabled and the file, before opening it", async () => {
    const dir = await newDir();
    const result = await check('store: { type: libsql, url: "file:./data/ha.db" }\nha: { enabled: true }\n', {}, dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("ha.enabled: replicas need a store they all reach: file:./data/ha.db");
    // Refused by validation: the store was not opened, so its file was not created.
    expect(await Bun.file(join(dir, "data/ha.db")).exists()).toBe(false);
  });

  test("accepts a remote store, opening it with the token from the environment", async () => {
    const dir = await newDir();
    const token = "a-token-of-the-remote-store";
    const server = startHranaServer({ path: join(dir, "store.db"), token });
    const api = await startTestApiServer();
    try {
      await api.writeKubeconfig(join(dir, "kubeconfig"), "token");
      const yaml =
        'store: { type: libsql, url: "${LIBSQL_URL}", authToken: "${LIBSQL_AUTH_TOKEN}" }\n' +
        `ha: { enabled: true, kubeconfig: ${join(dir, "kubeconfig")} }\nhttp: { address: 127.0.0.1 }\n`;
      const result = await check(yaml, { LIBSQL_URL: server.url, LIBSQL_AUTH_TOKEN: token });
      // The config names no sources or sinks: valid, and said to do nothing.
      const stderr = ["no sources: nothing is watched", "no sinks: nothing is delivered (no SSE, NATS, webhook)"]
        .map((warning) => `kubemeta: warning: ${warning}\n`)
        .join("");
      expect(result).toEqual({ code: 0, stdout: "config is valid\n", stderr });
      // The check did reach the server: a wrong token fails it.
      const refused = await check(yaml, { LIBSQL_URL: server.url, LIBSQL_AUTH_TOKEN: "not-the-token" });
      expect(refused.code).toBe(1);
    } finally {
      await api.stop();
      await server.stop();
    }
  });

  test("a Lease kubeconfig that cannot be loaded is a config error at ha.kubeconfig naming it", async () => {
    const dir = await newDir();
    const server = startHranaServer({ path: join(dir, "store.db") });
    try {
      const missing = join(dir, "no-such-kubeconfig");
      const result = await check(
        `store: { type: libsql, url: "${server.url}" }\nha: { enabled: true, kubeconfig: ${missing} }\n`,
      );
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toEqual([
        "invalid config:",
        expect.stringMatching(/^ {2}ha\.kubeconfig: the kubeconfig of the Lease cannot be loaded: /),
      ]);
      expect(lines[1]).toContain(missing);
    } finally {
      await server.stop();
    }
  });

  test("without ha.kubeconfig or ha.context, --check loads no kubeconfig, as for the source", async () => {
    const dir = await newDir();
    const server = startHranaServer({ path: join(dir, "store.db") });
    // Outside a cluster, with no kubeconfig anywhere: a start would find none, the pod its service account.
    const nowhere = { KUBECONFIG: "", HOME: dir, KUBERNETES_SERVICE_HOST: "", KUBERNETES_SERVICE_PORT: "" };
    try {
      const store = `store: { type: libsql, url: "${server.url}" }`;
      const yaml = `${store}\nsources: [{ type: kubernetes }]\nha: { enabled: true }\nhttp: { address: 127.0.0.1 }\n`;
      const result = await check(yaml, nowhere, dir);
      const stderr = "kubemeta: warning: no sinks: nothing is delivered (no SSE, NATS, webhook)\n";
      expect(result).toEqual({ code: 0, stdout: "config is valid\n", stderr });
    } finally {
      await server.stop();
    }
  });

  test("a context the Lease's kubeconfig lacks: ha.context in the source's words, at --check and start", async () => {
    const dir = await newDir();
    const good = join(dir, "good.yaml");
    await Bun.write(good, kubeconfig(["main"]));
    const server = startHranaServer({ path: join(dir, "store.db") });
    const yaml = `store: { type: libsql, url: "${server.url}" }\nha: { enabled: true, context: nope }\n`;
    const noContext = /^kubeconfig KUBECONFIG=.*good\.yaml has no context "nope" \(contexts: main\)$/;
    try {
      // As the kubernetes source says its own `context` (tests/config-check.test.ts), at the key that names it.
      const checked = await check(yaml, { KUBECONFIG: good }, dir);
      expect({ code: checked.code, stdout: checked.stdout }).toEqual({ code: 1, stdout: "" });
      const [heading, issue, ...more] = checked.stderr.trimEnd().split("\n");
      expect({ heading, more }).toEqual({ heading: "invalid config:", more: [] });
      expect(issue?.replace(/^ {2}ha\.context: /, "")).toMatch(noContext);
      // A start stops before the store is opened: one error line at the same key.
      const started = await runMain(["--config", join(dir, "kubemeta.yaml")], { cwd: dir, env: { KUBECONFIG: good } });
      expect(started.code).toBe(1);
      const lines = started.stdout
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines).toEqual([
        expect.objectContaining({
          level: "error",
          msg: "ha.context: the kubeconfig of the Lease cannot be loaded",
          error: { name: "Error", message: expect.stringMatching(noContext) },
        }),
      ]);
    } finally {
      await server.stop();
    }
  });

  test("a shared store a later kubemeta migrated: --check gives the start's hint, to run that release", async () => {
    const dir = await newDir();
    const server = startHranaServer({ path: join(dir, "store.db") });
    try {
      const yaml = `store: { type: libsql, url: "${server.url}" }\nha: { enabled: true }\n`;
      expect((await check(yaml, {}, dir)).code).toBe(0);
      // What a later release's start leaves: a migration this release does not know.
      const db = new Database(join(dir, "store.db"));
      db.run("INSERT INTO schema_version (version, applied_at) VALUES (?, '2027-01-01T00:00:00.000Z')", [
        SCHEMA_VERSION + 1,
      ]);
      db.close();
      const result = await check(yaml, {}, dir);
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
      const [heading, issue, ...more] = result.stderr.trimEnd().split("\n");
      expect({ heading, more }).toEqual({ heading: "invalid config:", more: [] });
      // Was: "upgrade kubemeta or use another store" alone, where another store would split the deployment.
      expect(issue).toContain("newer than this kubemeta supports");
      expect(issue).toContain("a replica of a later kubemeta migrated this shared store: run this replica on that");
    } finally {
      await server.stop();
    }
  });
});

describe("ha config", () => {
  test("renewDeadline must be less than leaseDuration, retryPeriod less than renewDeadline / 1.2", async () => {
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true, leaseDuration: "10s" } })).toEqual([
      "ha.renewDeadline: must be less than leaseDuration (10s; leaseDuration is 10s)",
    ]);
    // A bare number is milliseconds: the value said shows it, at the key left to its default too.
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true, leaseDuration: 15 } })).toEqual([
      "ha.renewDeadline: must be less than leaseDuration (10s; leaseDuration is 15ms)",
    ]);
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true, renewDeadline: "3s", retryPeriod: "3s" } })).toEqual([
      "ha.retryPeriod: must be less than renewDeadline / 1.2 (3s; renewDeadline is 3s)",
    ]);
    // A POD_NAMESPACE set by hand is held to the same rule (the downward API's always passes it).
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true } }, { POD_NAMESPACE: "kube.system" })).toEqual([
      expect.stringMatching(/^ha\.lease\.namespace: POD_NAMESPACE "kube\.system", its default, must be a namespace's/),
    ]);
    // A namespace's name is a DNS-1123 label: the Lease could never be created in `kube.system`.
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true, lease: { namespace: "kube.system" } } })).toEqual([
      expect.stringMatching(/^ha\.lease\.namespace: must be a namespace's name \(a DNS-1123 label/),
    ]);
    const config = await resolve({
      store: REMOTE,
      ha: { enabled: true, leaseDuration: "30s", renewDeadline: "20s", retryPeriod: "5s", followInterval: "1s" },
    });
    expect(config.ha).toMatchObject({
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 5_000,
      followIntervalMs: 1_000,
    });
  });

  test("lease.name is a DNS-1123 subdomain: each label between dots begins and ends in a letter or digit", async () => {
    // The API server refuses a Lease of any other name (422): every replica would retry its create for good.
    for (const name of ["kube..meta", "kube.-meta", "kube-.meta", "Kubemeta", "k".repeat(254)]) {
      expect(await issuesOf({ store: REMOTE, ha: { enabled: true, lease: { name } } })).toEqual([
        expect.stringMatching(/^ha\.lease\.name: must be a DNS-1123 subdomain/),
      ]);
    }
    for (const name of ["kubemeta", "kubemeta.leader", "a", "k".repeat(253)]) {
      const config = await resolve({ store: REMOTE, ha: { enabled: true, lease: { name } } });
      expect(config.ha?.lease.name).toBe(name);
    }
  });

  test("followInterval is at most 1s: a client from a replica further on is waited for 2 s, not reset", async () => {
    expect(await issuesOf({ store: REMOTE, ha: { enabled: true, followInterval: "5s" } })).toEqual([
      "ha.followInterval: must be at most 1s: a resume point from a replica further on is waited for 2s",
    ]);
  });

  test("defaults: identity POD_NAME, HOSTNAME or host-pid; namespace POD_NAMESPACE or default", async () => {
    const enabled = { store: REMOTE, ha: { enabled: true } };
    expect((await resolve(enabled, { POD_NAME: "kubemeta-7d9f-abc", POD_NAMESPACE: "kubemeta" })).ha).toEqual({
      lease: { name: "kubemeta", namespace: "kubemeta", namespaceFrom: "POD_NAMESPACE" },
      identity: "kubemeta-7d9f-abc",
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      followIntervalMs: 250,
    });
    expect((await resolve(enabled, { HOSTNAME: "node-host" })).ha).toMatchObject({
      lease: { name: "kubemeta", namespace: "default", namespaceFrom: "default" },
      identity: "node-host",
    });
    // Without either (two replicas on one machine, outside Kubernetes), the process id keeps their names apart.
    expect((await resolve(enabled, {})).ha?.identity).toBe(`${hostname()}-${process.pid}`);
    const explicit = {
      store: REMOTE,
      ha: { enabled: true, identity: "me", lease: { name: "meta", namespace: "ops" } },
    };
    expect((await resolve(explicit, { POD_NAME: "pod", POD_NAMESPACE: "kubemeta" })).ha).toMatchObject({
      lease: { name: "meta", namespace: "ops", namespaceFrom: "config" },
      identity: "me",
    });
  });

  test("without ha, or with enabled: false, there is no ha (and a file: store is fine)", async () => {
    expect((await resolve({})).ha).toBeUndefined();
    expect((await resolve({ ha: { enabled: false, lease: { name: "meta" } } })).ha).toBeUndefined();
  });
});
