/**
 * Kubeconfig files as kubectl reads them (kube/kubeconfig.ts, and loadKubeConfig in kube/transport.ts), each shown
 * with a request over TLS on loopback to the test API server: KUBECONFIG lists merged (a missing file skipped, the
 * first file to define a name wins), relative paths against the file that names them, a context's cluster and user
 * required, and a kubeconfig that is not YAML reported by file and position without a byte of its content.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import type { RequestOptions } from "node:https";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "../host/logger.ts";
import { createTransport, type KubeconfigOptions, loadKubeConfig } from "../kube/transport.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

let server: TestApiServer;
let dir: string;

beforeAll(async () => {
  server = await startTestApiServer();
  dir = await tempDir("kubemeta-kubeconfig-");
});

afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

type Fields = Record<string, unknown>;

/** A kubeconfig's YAML: clusters, users and contexts by name. */
function kubeconfig(parts: {
  clusters?: Record<string, Fields>;
  users?: Record<string, Fields>;
  contexts?: Record<string, Fields>;
  current?: string;
}): string {
  const named = (key: string, entries: Record<string, Fields> = {}) =>
    Object.entries(entries).map(([name, value]) => ({ name, [key]: value }));
  return Bun.YAML.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: named("cluster", parts.clusters),
      users: named("user", parts.users),
      contexts: named("context", parts.contexts),
      ...(parts.current ? { "current-context": parts.current } : {}),
    },
    null,
    2,
  );
}

/** The test API server as a kubeconfig cluster, its CA inline. */
const cluster = () => ({
  server: server.url,
  "certificate-authority-data": Buffer.from(server.caPem).toString("base64"),
});

async function write(path: string, text: string): Promise<string> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
  return path;
}

/** Runs `fn` with these environment variables (undefined: unset), restored after. */
function withEnv<T>(env: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  set(env);
  try {
    return fn();
  } finally {
    set(saved);
  }
}

/** KUBECONFIG as the only kubeconfig (not in a cluster, no explicit file). */
const kubeconfigList = (...files: string[]) => ({ KUBECONFIG: files.join(":"), KUBERNETES_SERVICE_HOST: undefined });

/** Loads the kubeconfig and lists namespaces with it: the status the API server answered. */
async function status(options: KubeconfigOptions, env: Record<string, string | undefined> = {}): Promise<number> {
  const { kc } = withEnv(env, () => loadKubeConfig(options));
  const transport = createTransport(kc, () => kc);
  const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
  await response.body?.cancel();
  return response.status;
}

/** The message `fn` throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("it did not throw");
}

/** The first 6-character piece of `secret` that `text` contains. */
function leaked(text: string, secret: string): string | undefined {
  for (let i = 0; i + 6 <= secret.length; i++) {
    if (text.includes(secret.slice(i, i + 6))) return secret.slice(i, i + 6);
  }
  return undefined;
}

describe("a kubeconfig that is not YAML", () => {
  // The user's line is indented too deep: js-yaml's own message quotes it, token and all.
  const broken = (token: string) =>
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: main",
      "clusters:",
      "- name: c",
      "  cluster: {server: 'https://127.0.0.1:6443'}",
      "contexts:",
      "- name: main",
      "  context: {cluster: c, user: u}",
      "users:",
      "- name: u",
      `    user: {token: ${token}}`,
      "",
    ].join("\n");

  test("--check names the file and where it breaks, and quotes none of it; a context's missing user too", async () => {
    const token = server.token;
    const file = await write(join(dir, "check", "broken.yaml"), broken(token));
    // What client-node's parser says of it: the line itself, a part of the token with it (why the error is made here).
    const quoted = errorOf(() => new KubeConfig().loadFromFile(file));
    expect(leaked(quoted, token)).toBeDefined();
    const ghost = await write(
      join(dir, "check", "ghost.yaml"),
      kubeconfig({
        clusters: { c: cluster() },
        users: { admin: { token } },
        contexts: { main: { cluster: "c", user: "ghost" } },
        current: "main",
      }),
    );
    const config = await write(
      join(dir, "check", "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./data/kubemeta.db' }",
        "sources:",
        `  - { type: kubernetes, name: broken, kubeconfig: ${file} }`,
        `  - { type: kubernetes, name: ghost, kubeconfig: ${ghost} }`,
      ].join("\n"),
    );
    const result = await runMain(["--check", "--config", config], { cwd: join(dir, "check") });
    expect(result.code).toBe(1);
    const lines = result.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { source: string; error: { message: string } });
    expect(lines.map(({ source, error }) => [source, error.message])).toEqual([
      [
        "broken",
        `cannot load kubeconfig ${file}: not valid YAML at line 12, column 9 (bad indentation of a mapping entry)`,
      ],
      ["ghost", `kubeconfig ${ghost}: context "main" names user "ghost", which the kubeconfig does not define`],
    ]);
    expect(leaked(result.stdout + result.stderr, token)).toBeUndefined();
  });

  test("/readyz and the log name the file, and quote none of it", async () => {
    const token = "VqEZyi3R7SqVOhVzKfT2mWb9xLpQ4nHd";
    const file = await write(join(dir, "readyz", "broken.yaml"), broken(token));
    let log = "";
    const th = await startTestHost({
      extra: { sources: [{ type: "kubernetes", kubeconfig: file, resources: ["pods"], backoff: { initial: "20ms" } }] },
      logger: createLogger({ write: (line) => (log += line) }),
    });
    try {
      const body = await waitFor(
        async () => {
          const response = await fetch(`${th.url}/readyz`);
          const text = await response.text();
          return response.status === 503 && text.includes("cannot load the kubeconfig") ? text : undefined;
        },
        5000,
        "/readyz to name the kubeconfig",
      );
      expect(JSON.parse(body)).toEqual({
        ready: false,
        waiting: [
          `source kubernetes: cannot load the kubeconfig: cannot load kubeconfig ${file}: ` +
            "not valid YAML at line 12, column 9 (bad indentation of a mapping entry)",
        ],
      });
      expect(log).toContain("not valid YAML at line 12, column 9");
      expect(leaked(body + log, token)).toBeUndefined();
    } finally {
      await th.destroy();
    }
  });

  test("a tag or alias, which the parser's reason would quote, leaves only the position", async () => {
    const token = "Zk4Qm8Tr2Wx6Yp0Lc3Vb";
    // A token written as YAML takes it: `!…` is a tag, `*…` an alias.
    for (const value of [`!${token}`, `*${token}`]) {
      const file = await write(join(dir, "tag", "config"), `users:\n- name: u\n  user: {token: ${value}}\n`);
      const error = errorOf(() => loadKubeConfig({ kubeconfig: file }));
      expect(error).toMatch(new RegExp(`^cannot load kubeconfig ${file}: not valid YAML at line 3, column \\d+$`));
      expect(leaked(error, token)).toBeUndefined();
    }
  });
});

describe("KUBECONFIG, merged as kubectl merges it", () => {
  test("a missing file is skipped; the first file to define a name wins it; paths relative to each file", async () => {
    const one = join(dir, "merge", "one");
    const two = join(dir, "merge", "two");
    await write(join(one, "ca.pem"), server.caPem);
    await write(join(one, "token"), `${server.token}\n`);
    await write(join(two, "client.pem"), server.clientCertPem);
    await write(join(two, "client.key"), server.clientKeyPem);
    // kubeadm names every cluster `kubernetes` and every admin `kubernetes-admin`: the same names in both files.
    const first = await write(
      join(one, "config"),
      kubeconfig({
        clusters: { kubernetes: { server: server.url, "certificate-authority": "ca.pem" } },
        users: { "kubernetes-admin": { tokenFile: "token" } },
        contexts: { main: { cluster: "kubernetes", user: "kubernetes-admin" } },
        current: "main",
      }),
    );
    const second = await write(
      join(two, "config"),
      kubeconfig({
        clusters: { kubernetes: { server: "https://127.0.0.1:1", "insecure-skip-tls-verify": true } },
        users: {
          "kubernetes-admin": { token: "the-second-files-token" },
          cert: { "client-certificate": "client.pem", "client-key": "client.key" },
        },
        contexts: { main: { cluster: "elsewhere", user: "nobody" }, other: { cluster: "kubernetes", user: "cert" } },
        current: "other",
      }),
    );
    const missing = join(dir, "merge", "absent", "config");
    const env = kubeconfigList(missing, first, second);
    // client-node's own merge: ENOENT on the missing file, and a name two files share is an error.
    expect(() => withEnv(env, () => new KubeConfig().loadFromDefault())).toThrow(/ENOENT/);
    expect(() => withEnv(kubeconfigList(first, second), () => new KubeConfig().loadFromDefault())).toThrow(
      "Duplicate cluster: kubernetes",
    );

    const { kc, origin } = withEnv(env, () => loadKubeConfig({}));
    expect(origin).toBe(`KUBECONFIG=${missing}:${first}:${second}`);
    expect(kc.getCurrentContext()).toBe("main");
    expect(kc.getContexts().map(({ name, cluster, user }) => [name, cluster, user])).toEqual([
      ["main", "kubernetes", "kubernetes-admin"],
      ["other", "kubernetes", "cert"],
    ]);
    expect(kc.getCluster("kubernetes")).toMatchObject({ server: server.url, caFile: join(one, "ca.pem") });
    // The first file's user, its token from its tokenFile, relative to the first file.
    expect(await status({}, env)).toBe(200);
    // The second file's context and user on the first file's cluster; its client certificate relative to it.
    expect(kc.getUser("cert")).toMatchObject({ certFile: join(two, "client.pem"), keyFile: join(two, "client.key") });
    expect(await status({ context: "other" }, env)).toBe(200);
  });

  test("a list none of whose files exists is an error naming them", async () => {
    const files = [join(dir, "none", "a"), join(dir, "none", "b")];
    expect(() => withEnv(kubeconfigList(...files), () => loadKubeConfig({}))).toThrow(
      `cannot load kubeconfig KUBECONFIG=${files.join(":")}: none of its files exists (${files.join(", ")})`,
    );
  });
});

test("token-file and tokenFile are both relative to the kubeconfig that names them", async () => {
  await write(join(dir, "token-files", "token"), server.token);
  for (const key of ["token-file", "tokenFile"]) {
    const file = await write(
      join(dir, "token-files", key, "config"),
      kubeconfig({
        clusters: { c: cluster() },
        users: { u: { [key]: "../token" } },
        contexts: { main: { cluster: "c", user: "u" } },
        current: "main",
      }),
    );
    if (key === "token-file") {
      // client-node reads it relative to the working directory, for every user, as it parses.
      expect(() => new KubeConfig().loadFromFile(file)).toThrow(/ENOENT/);
    }
    expect(await status({ kubeconfig: file })).toBe(200);
  }
});

test("an exec plugin named by a relative path runs from the kubeconfig's directory", async () => {
  const credential = {
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token: server.token },
  };
  const helper = await write(
    join(dir, "exec", "bin", "credential"),
    `#!/bin/sh\necho '${JSON.stringify(credential)}'\n`,
  );
  await chmod(helper, 0o755);
  const exec = { apiVersion: "client.authentication.k8s.io/v1", command: "./bin/credential", interactiveMode: "Never" };
  const file = await write(
    join(dir, "exec", "config"),
    kubeconfig({
      clusters: { c: cluster() },
      users: { u: { exec } },
      contexts: { main: { cluster: "c", user: "u" } },
      current: "main",
    }),
  );
  expect(await status({ kubeconfig: file })).toBe(200);
});

test("an exec plugin runs once for the requests that ask for credentials at once (resources at start)", async () => {
  const credential = {
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token: server.token, expirationTimestamp: new Date(Date.now() + 3_600_000).toISOString() },
  };
  const calls = join(dir, "once", "calls.log");
  const helper = await write(
    join(dir, "once", "credential"),
    `#!/bin/sh\necho run >> '${calls}'\necho '${JSON.stringify(credential)}'\n`,
  );
  await chmod(helper, 0o755);
  const exec = { apiVersion: "client.authentication.k8s.io/v1", command: helper, interactiveMode: "Never" };
  const file = await write(
    join(dir, "once", "config"),
    kubeconfig({
      clusters: { c: cluster() },
      users: { u: { exec } },
      contexts: { main: { cluster: "c", user: "u" } },
      current: "main",
    }),
  );
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => kc);
  const statuses = await Promise.all(
    Array.from({ length: 11 }, async () => {
      const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
      await response.body?.cancel();
      return response.status;
    }),
  );
  expect(new Set(statuses)).toEqual(new Set([200]));
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run"]);
});

describe("the context in use, its cluster and its user", () => {
  const base = () => ({ clusters: { c: cluster() }, users: { u: { token: "t" } } });

  test("a user the kubeconfig does not define is an error at load (client-node would drop the CA)", async () => {
    const text = kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "ghost" } }, current: "main" });
    const file = await write(join(dir, "ghost", "config"), text);
    // What client-node does with it: no user, so none of the cluster's TLS settings either.
    const kc = new KubeConfig();
    kc.loadFromString(text);
    const options: RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    expect(options.ca).toBeUndefined();

    expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
      `kubeconfig ${file}: context "main" names user "ghost", which the kubeconfig does not define`,
    );
  });

  test("a cluster the kubeconfig does not define, and a current context that does not exist", async () => {
    const elsewhere = await write(
      join(dir, "elsewhere", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "gone", user: "u" } }, current: "main" }),
    );
    expect(() => loadKubeConfig({ kubeconfig: elsewhere })).toThrow(
      `kubeconfig ${elsewhere}: context "main" names cluster "gone", which the kubeconfig does not define`,
    );
    const gone = await write(
      join(dir, "gone", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "u" } }, current: "gone" }),
    );
    expect(() => loadKubeConfig({ kubeconfig: gone })).toThrow(
      `kubeconfig ${gone}: current context "gone" does not exist (contexts: main)`,
    );
    const unset = await write(
      join(dir, "unset", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "u" } } }),
    );
    expect(() => loadKubeConfig({ kubeconfig: unset })).toThrow(
      `kubeconfig ${unset} sets no current-context, and no context is named (contexts: main)`,
    );
    // Another context is no concern of this one (kubectl checks only the context in use).
    const file = await write(
      join(dir, "other", "config"),
      kubeconfig({
        clusters: { c: cluster() },
        users: { u: { token: server.token } },
        contexts: { main: { cluster: "c", user: "u" }, broken: { cluster: "gone", user: "ghost" } },
        current: "main",
      }),
    );
    expect(await status({ kubeconfig: file })).toBe(200);
  });

  test("a context that names no user is anonymous, and keeps its cluster's CA", async () => {
    const anonymous = await startTestApiServer({ anonymous: true });
    try {
      const file = await write(
        join(dir, "anonymous", "config"),
        kubeconfig({
          clusters: {
            c: { server: anonymous.url, "certificate-authority-data": Buffer.from(anonymous.caPem).toString("base64") },
          },
          contexts: { main: { cluster: "c" } },
          current: "main",
        }),
      );
      expect(await status({ kubeconfig: file })).toBe(200);
    } finally {
      await anonymous.stop();
    }
  });
});
