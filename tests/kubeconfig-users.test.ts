/**
 * A kubeconfig user's credentials as kubectl reads them, each shown with a request over TLS on loopback to the test
 * API server: token files relative to the kubeconfig, exec plugins run from its directory and run once for the
 * requests that ask at once.
 */
import { expect, test } from "bun:test";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { loadKubeConfig } from "../kube/load.ts";
import { createTransport } from "../kube/transport.ts";
import { clusterOf, execUserKubeconfig, kubeconfig, kubeconfigSuite, status, write } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();

test("token-file and tokenFile are both relative to the kubeconfig that names them", async () => {
  await write(join(suite.dir, "token-files", "token"), suite.server.token);
  for (const key of ["token-file", "tokenFile"]) {
    const file = await write(
      join(suite.dir, "token-files", key, "config"),
      kubeconfig({
        clusters: { c: clusterOf(suite.server) },
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

test("token and tokenFile: the file's token is sent, as by client-go; the inline one if the file is gone", async () => {
  const dir = join(suite.dir, "token-and-file");
  const withBoth = (tokenFile: string) =>
    write(
      join(dir, "config"),
      kubeconfig({
        clusters: { c: clusterOf(suite.server) },
        users: { u: { token: "an-old-snapshot-of-the-token", tokenFile } },
        contexts: { main: { cluster: "c", user: "u" } },
        current: "main",
      }),
    );
  await write(join(dir, "token"), `${suite.server.token}\n`);
  expect(await status({ kubeconfig: await withBoth("token") })).toBe(200);
  // A file that cannot be read leaves the inline token (client-go's request keeps it): refused here, not thrown.
  expect(await status({ kubeconfig: await withBoth("gone") })).toBe(401);
});

test("an exec plugin named by a relative path runs from the kubeconfig's directory", async () => {
  const file = await execUserKubeconfig(suite, join(suite.dir, "exec"), "bin/credential", () => "./bin/credential");
  expect(await status({ kubeconfig: file })).toBe(200);
});

test("an exec plugin runs once for the requests that ask for credentials at once (resources at start)", async () => {
  const calls = join(suite.dir, "once", "calls.log");
  const file = await execUserKubeconfig(suite, join(suite.dir, "once"), "credential", (path) => path, {
    before: `echo run >> '${calls}'`,
    expires: new Date(Date.now() + 3_600_000),
  });
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

test("an exec plugin that does not exit: each request waits until given up, saying so; one run", async () => {
  const folder = join(suite.dir, "hung");
  const [calls, release] = [join(folder, "calls.log"), join(folder, "release")];
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nwhile [ ! -e '${release}' ]; do sleep 0.05; done`,
  });
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => kc);
  for (let attempt = 0; attempt < 2; attempt++) {
    const started = performance.now();
    const given = transport.get("/api/v1/namespaces", AbortSignal.timeout(300));
    const deadline = Bun.sleep(3000).then(() => "still waiting 3 s on");
    expect(await Promise.race([given.catch((err: Error) => err.message), deadline])).toBe(
      `no credentials: the kubeconfig's exec plugin ${join(folder, "credential")} has not exited`,
    );
    expect(performance.now() - started).toBeLessThan(2000);
  }
  await write(release, "");
  const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
  await response.body?.cancel();
  expect(response.status).toBe(200);
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run"]);
});

test("an exec plugin that fails is named, with its stderr; its output never quoted (a bare token)", async () => {
  const token = suite.server.token;
  const cases = [
    ["bare", `echo '${token}'; exit 0`, "printed no ExecCredential: its output is not JSON"],
    ["cut", `echo '{"status":{"token":"${token}"'; exit 0`, "printed no ExecCredential: its output is not JSON"],
    // Was: `failed, and wrote nothing on stderr` for both, how it ended said nowhere.
    ["silent", "exit 3", "exited with code 3, and wrote nothing on stderr"],
    ["killed", "kill -9 $$", "was killed by SIGKILL, and wrote nothing on stderr"],
    ["said", "echo 'error: not logged in' >&2; exit 1", "failed: error: not logged in"],
  ];
  for (const [name, before, said] of cases) {
    const folder = join(suite.dir, "failing", name!);
    const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, { before });
    const { kc } = loadKubeConfig({ kubeconfig: file });
    const failed = createTransport(kc, () => kc).get("/api/v1/namespaces", AbortSignal.timeout(5000));
    const message = await failed.then(
      () => "answered",
      (err: Error) => err.message,
    );
    expect(message).toBe(`the kubeconfig's exec plugin ${join(folder, "credential")} ${said}`);
  }
});

test("an exec plugin that once prints an ExecCredential without a status: said, and run again next time", async () => {
  const folder = join(suite.dir, "no-status");
  const calls = join(folder, "calls.log");
  // Its first run prints `{}` (a CLI half set up, say) and exits 0; the runs after it print the credential.
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nif [ "$(wc -l < '${calls}')" -le 1 ]; then echo '{}'; exit 0; fi`,
  });
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => loadKubeConfig({ kubeconfig: file }).kc);
  const first = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000)).then(
    () => "answered",
    (err: Error) => err.message,
  );
  expect(first).toBe(
    `the kubeconfig's exec plugin ${join(folder, "credential")} printed no ExecCredential: its output has no status`,
  );
  const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
  await response.body?.cancel();
  expect(response.status).toBe(200);
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run", "run"]);
});

test("an exec plugin whose ExecCredential has no token nor certificate: said so, not sent anonymously", async () => {
  const folder = join(suite.dir, "empty-status");
  const calls = join(folder, "calls.log");
  const empty = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: {} });
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nif [ "$(wc -l < '${calls}')" -le 1 ]; then echo '${empty}'; exit 0; fi`,
  });
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => loadKubeConfig({ kubeconfig: file }).kc);
  const first = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000)).then(
    (response) => `answered ${response.status}`,
    (err: Error) => err.message,
  );
  expect(first).toBe(
    `the kubeconfig's exec plugin ${join(folder, "credential")} printed an ExecCredential with neither a token ` +
      "nor a client certificate",
  );
  const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
  await response.body?.cancel();
  expect(response.status).toBe(200);
});

test("an exec plugin is told KUBERNETES_EXEC_INFO as by client-go: not interactive; its cluster if asked", async () => {
  const folder = join(suite.dir, "exec-info");
  const credential = { apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: {} };
  const plugin = await write(
    join(folder, "credential"),
    `#!/bin/sh\nprintf '%s' "$KUBERNETES_EXEC_INFO" > "$0.$1"\n` +
      `echo '${JSON.stringify({ ...credential, status: { token: suite.server.token } })}'\n`,
  );
  await chmod(plugin, 0o755);
  // client-go tells a plugin its cluster's `client.authentication.k8s.io/exec` extension as `spec.cluster.config`.
  const config = { audience: "kubemeta", scopes: ["read"] };
  const extensions = [
    { name: "client.authentication.k8s.io/exec", extension: config },
    { name: "other", extension: 1 },
  ];
  const cluster = { ...clusterOf(suite.server), "tls-server-name": "localhost", extensions };
  const exec = (name: string, more: Record<string, unknown>) => ({
    apiVersion: "client.authentication.k8s.io/v1",
    command: plugin,
    args: [name],
    interactiveMode: "Never",
    env: [{ name: "KUBERNETES_EXEC_INFO", value: "the user's own" }],
    ...more,
  });
  const file = await write(
    join(folder, "config"),
    kubeconfig({
      clusters: { c: cluster },
      users: { plain: { exec: exec("plain", {}) }, told: { exec: exec("told", { provideClusterInfo: true }) } },
      contexts: { plain: { cluster: "c", user: "plain" }, told: { cluster: "c", user: "told" } },
      current: "plain",
    }),
  );
  expect(await status({ kubeconfig: file })).toBe(200);
  expect(await status({ kubeconfig: file, context: "told" })).toBe(200);
  const spec = { interactive: false };
  expect(JSON.parse(await Bun.file(`${plugin}.plain`).text())).toEqual({ ...credential, status: undefined, spec });
  expect(JSON.parse(await Bun.file(`${plugin}.told`).text())).toEqual({
    ...credential,
    status: undefined,
    spec: {
      cluster: {
        server: suite.server.url,
        "tls-server-name": "localhost",
        "certificate-authority-data": cluster["certificate-authority-data"],
        // Was: absent.
        config,
      },
      interactive: false,
    },
  });
});
