/**
 * Kubeconfig files as kubectl reads them (kube/kubeconfig.ts, and loadKubeConfig in kube/transport.ts), each shown
 * with a request over TLS on loopback to the test API server: KUBECONFIG lists merged (a missing file skipped, the
 * first file to define a name wins), a context's cluster and user required, and a kubeconfig that is not YAML
 * reported by file and position without a byte of its content. Its users' credentials: kubeconfig-users.test.ts.
 */
import { describe, expect, test } from "bun:test";
import type { RequestOptions } from "node:https";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "../host/logger.ts";
import { loadKubeConfig } from "../kube/load.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { clusterOf, kubeconfig, kubeconfigSuite, status, withEnv, write } from "./kubeconfig-fixtures.ts";
import { runMain } from "./reliability-process.ts";

const suite = kubeconfigSuite();

/** KUBECONFIG as the only kubeconfig (not in a cluster, no explicit file). */
const kubeconfigList = (...files: string[]) => ({ KUBECONFIG: files.join(":"), KUBERNETES_SERVICE_HOST: undefined });

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
    const token = suite.server.token;
    const file = await write(join(suite.dir, "check", "broken.yaml"), broken(token));
    // What client-node's parser says of it: the line itself, a part of the token with it (why the error is made here).
    const quoted = errorOf(() => new KubeConfig().loadFromFile(file));
    expect(leaked(quoted, token)).toBeDefined();
    const ghost = await write(
      join(suite.dir, "check", "ghost.yaml"),
      kubeconfig({
        clusters: { c: clusterOf(suite.server) },
        users: { admin: { token } },
        contexts: { main: { cluster: "c", user: "ghost" } },
        current: "main",
      }),
    );
    const config = await write(
      join(suite.dir, "check", "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./data/kubemeta.db' }",
        "sources:",
        `  - { type: kubernetes, name: broken, kubeconfig: ${file}, resources: [pods] }`,
        `  - { type: kubernetes, name: ghost, kubeconfig: ${ghost}, resources: [nodes] }`,
      ].join("\n"),
    );
    const result = await runMain(["--check", "--config", config], { cwd: join(suite.dir, "check") });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      [
        "invalid config:",
        `  sources[0]: cannot load kubeconfig ${file}: not valid YAML at line 12, column 9 ` +
          "(bad indentation of a mapping entry)",
        `  sources[1]: kubeconfig ${ghost}: context "main" names user "ghost", which the kubeconfig does not define`,
        "",
      ].join("\n"),
    );
    expect(leaked(result.stdout + result.stderr, token)).toBeUndefined();
  });

  test("/readyz and the log name the file, and quote none of it", async () => {
    const token = "VqEZyi3R7SqVOhVzKfT2mWb9xLpQ4nHd";
    const file = await write(join(suite.dir, "readyz", "broken.yaml"), broken(token));
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
      const file = await write(join(suite.dir, "tag", "config"), `users:\n- name: u\n  user: {token: ${value}}\n`);
      const error = errorOf(() => loadKubeConfig({ kubeconfig: file }));
      expect(error).toMatch(new RegExp(`^cannot load kubeconfig ${file}: not valid YAML at line 3, column \\d+$`));
      expect(leaked(error, token)).toBeUndefined();
    }
  });
});

describe("KUBECONFIG, merged as kubectl merges it", () => {
  test("a missing file is skipped; the first file to define a name wins it; paths relative to each file", async () => {
    const one = join(suite.dir, "merge", "one");
    const two = join(suite.dir, "merge", "two");
    await write(join(one, "ca.pem"), suite.server.caPem);
    await write(join(one, "token"), `${suite.server.token}\n`);
    await write(join(two, "client.pem"), suite.server.clientCertPem);
    await write(join(two, "client.key"), suite.server.clientKeyPem);
    // kubeadm names every cluster `kubernetes` and every admin `kubernetes-admin`: the same names in both files.
    const first = await write(
      join(one, "config"),
      kubeconfig({
        clusters: { kubernetes: { server: suite.server.url, "certificate-authority": "ca.pem" } },
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
    const missing = join(suite.dir, "merge", "absent", "config");
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
    expect(kc.getCluster("kubernetes")).toMatchObject({ server: suite.server.url, caFile: join(one, "ca.pem") });
    // The first file's user, its token from its tokenFile, relative to the first file.
    expect(await status({}, env)).toBe(200);
    // The second file's context and user on the first file's cluster; its client certificate relative to it.
    expect(kc.getUser("cert")).toMatchObject({ certFile: join(two, "client.pem"), keyFile: join(two, "client.key") });
    expect(await status({ context: "other" }, env)).toBe(200);
  });

  test("a list none of whose files exists is an error naming them", async () => {
    const files = [join(suite.dir, "none", "a"), join(suite.dir, "none", "b")];
    expect(() => withEnv(kubeconfigList(...files), () => loadKubeConfig({}))).toThrow(
      `cannot load kubeconfig KUBECONFIG=${files.join(":")}: none of its files exists (${files.join(", ")})`,
    );
  });
});

describe("the context in use, its cluster and its user", () => {
  const base = () => ({ clusters: { c: clusterOf(suite.server) }, users: { u: { token: "t" } } });

  test("a user the kubeconfig does not define is an error at load (client-node would drop the CA)", async () => {
    const text = kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "ghost" } }, current: "main" });
    const file = await write(join(suite.dir, "ghost", "config"), text);
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
      join(suite.dir, "elsewhere", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "gone", user: "u" } }, current: "main" }),
    );
    expect(() => loadKubeConfig({ kubeconfig: elsewhere })).toThrow(
      `kubeconfig ${elsewhere}: context "main" names cluster "gone", which the kubeconfig does not define`,
    );
    const gone = await write(
      join(suite.dir, "gone", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "u" } }, current: "gone" }),
    );
    expect(() => loadKubeConfig({ kubeconfig: gone })).toThrow(
      `kubeconfig ${gone}: current context "gone" does not exist (contexts: main)`,
    );
    const unset = await write(
      join(suite.dir, "unset", "config"),
      kubeconfig({ ...base(), contexts: { main: { cluster: "c", user: "u" } } }),
    );
    expect(() => loadKubeConfig({ kubeconfig: unset })).toThrow(
      `kubeconfig ${unset} sets no current-context, and no context is named (contexts: main)`,
    );
    // Another context is no concern of this one (kubectl checks only the context in use).
    const file = await write(
      join(suite.dir, "other", "config"),
      kubeconfig({
        clusters: { c: clusterOf(suite.server) },
        users: { u: { token: suite.server.token } },
        contexts: { main: { cluster: "c", user: "u" }, broken: { cluster: "gone", user: "ghost" } },
        current: "main",
      }),
    );
    expect(await status({ kubeconfig: file })).toBe(200);
  });

  test("the CA, client certificate and key files of the context in use are read at load, as kubectl does", async () => {
    const dir = join(suite.dir, "files");
    const ca = await write(join(dir, "ca.pem"), suite.server.caPem);
    const withFiles = (name: string, clusterFile: string, user: Record<string, string>) =>
      write(
        join(dir, name),
        kubeconfig({
          clusters: { c: { server: suite.server.url, "certificate-authority": clusterFile } },
          users: {
            u: { token: suite.server.token, ...user },
            v: { "client-certificate": "gone.pem", "client-key": "gone.key" },
          },
          // Another context's files are no concern of this one (kubectl checks only the context in use).
          contexts: { main: { cluster: "c", user: "u" }, other: { cluster: "c", user: "v" } },
          current: "main",
        }),
      );
    expect(await status({ kubeconfig: await withFiles("ok", "ca.pem", {}) })).toBe(200);
    const cases = [
      ["no-ca", "missing-ca.pem", {}, `certificate-authority ${join(dir, "missing-ca.pem")}: ENOENT`],
      [
        "no-cert",
        "ca.pem",
        { "client-certificate": "c.pem", "client-key": ca },
        `client-certificate ${join(dir, "c.pem")}`,
      ],
      ["no-key", "ca.pem", { "client-certificate": ca, "client-key": "k.pem" }, `client-key ${join(dir, "k.pem")}`],
    ] as const;
    for (const [name, clusterFile, user, said] of cases) {
      const file = await withFiles(name, clusterFile, user);
      expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
        `cannot load kubeconfig ${file}: cannot read its ${said}`,
      );
    }
    // No regular file (a FIFO's read would never end): said as what it is, never read.
    const dirCa = await withFiles("dir-ca", ".", {});
    expect(() => loadKubeConfig({ kubeconfig: dirCa })).toThrow(
      `cannot load kubeconfig ${dirCa}: its certificate-authority ${dir} is a directory, not a regular file`,
    );
    expect(() => loadKubeConfig({ kubeconfig: dir })).toThrow(
      `cannot load kubeconfig ${dir}: it is a directory, not a regular file`,
    );
    // --check loads it too, and says so at the entry, where start would have retried every list and watch for good.
    const config = await write(
      join(dir, "kubemeta.yaml"),
      `sources: [{ type: kubernetes, kubeconfig: ${join(dir, "no-ca")} }]\n` +
        `store: { type: libsql, url: "file:./data/k.db" }\n`,
    );
    const result = await runMain(["--check", "--config", config], { cwd: dir });
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 1,
      stderr:
        `invalid config:\n  sources[0]: cannot load kubeconfig ${join(dir, "no-ca")}: cannot read its ` +
        `certificate-authority ${join(dir, "missing-ca.pem")}: ENOENT\n`,
    });
  });

  test("a context that names no user is anonymous, and keeps its cluster's CA", async () => {
    const anonymous = await startTestApiServer({ anonymous: true });
    try {
      const file = await write(
        join(suite.dir, "anonymous", "config"),
        kubeconfig({
          clusters: {
            c: clusterOf(anonymous),
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
