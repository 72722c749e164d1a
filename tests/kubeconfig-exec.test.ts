/**
 * A kubeconfig's exec credential plugin run as client-go runs it, each shown with requests over TLS on loopback to the
 * test API server: what the plugin finds on its standard input, how one that cannot be started is said, and whose its
 * credential is (every transport of its configuration's, until it expires or a 401).
 */
import { expect, test } from "bun:test";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { createTransport, type KubeTransport } from "../kube/transport.ts";
import { waitFor } from "../testing/index.ts";
import { testPki } from "../simulator/certs.ts";
import { clusterOf, execUserKubeconfig, kubeconfig, kubeconfigSuite, tlsFront, write } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();

/** One request with the kubeconfig at `file`: its status, or what it failed with. */
async function answer(file: string, timeoutMs = 5000): Promise<string> {
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => kc);
  try {
    const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(timeoutMs));
    await response.body?.cancel();
    return String(response.status);
  } catch (error) {
    return (error as Error).message;
  } finally {
    transport.close();
  }
}

test("a plugin that would prompt reads the end of its input at once, as with client-go: its failure said", async () => {
  const folder = join(suite.dir, "prompt");
  // A CLI that asks for a password when it has none cached (client-go gives it no stdin unless interactive).
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: "printf 'Password: ' >&2\nread -r password || { echo 'no terminal to ask for a password' >&2; exit 1; }",
    exec: { interactiveMode: "IfAvailable" },
  });
  // Was: its stdin a pipe nobody wrote nor closed, the plugin waited on it for good, and so did every retry.
  expect(await answer(file, 3000)).toBe(
    `the kubeconfig's exec plugin ${join(folder, "credential")} failed: Password: no terminal to ask for a password`,
  );
});

test("a plugin not installed is said so, its installHint with it, as kubectl says it; one not executable", async () => {
  const folder = join(suite.dir, "missing");
  const hint =
    "kubemeta-test-login is needed to use this cluster:\n  install it with `brew install kubemeta-test-login`";
  const inPath = await execUserKubeconfig(suite, join(folder, "in-path"), "credential", () => "kubemeta-test-login", {
    exec: { installHint: hint },
  });
  // Was: `… failed: Executable not found in $PATH: "kubemeta-test-login"`, the hint the kubeconfig gives not said.
  expect(await answer(inPath)).toBe(
    "the kubeconfig's exec plugin kubemeta-test-login is not installed (not found in PATH): " +
      "kubemeta-test-login is needed to use this cluster: install it with `brew install kubemeta-test-login`",
  );
  const gone = join(folder, "by-path", "bin", "login");
  const byPath = await execUserKubeconfig(suite, join(folder, "by-path"), "credential", () => gone);
  // Was: `… failed: ENOENT: no such file or directory, posix_spawn '<its path>'`.
  expect(await answer(byPath)).toBe(`the kubeconfig's exec plugin ${gone} is not installed (no such file)`);
  const plain = join(folder, "not-executable", "credential");
  const notExecutable = await execUserKubeconfig(suite, join(folder, "not-executable"), "credential", (path) => path);
  await chmod(plain, 0o644);
  // Was: `… failed: EACCES: permission denied, posix_spawn '<its path>'`.
  expect(await answer(notExecutable)).toBe(
    `the kubeconfig's exec plugin ${plain} cannot be run: it is not an executable file (EACCES)`,
  );
});

test("one credential for the transports of a plugin (Lease, source), till it expires or a 401", async () => {
  const folder = join(suite.dir, "shared");
  const calls = join(folder, "calls.log");
  const runs = async () => (await Bun.file(calls).text()).trim().split("\n").length;
  const expires = new Date(Date.now() + 1500);
  // The first run's credential expires in 1.5 s, the next ones' in an hour.
  const later = { token: suite.server.token, expirationTimestamp: new Date(Date.now() + 3_600_000).toISOString() };
  const renewed = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: later,
  });
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nif [ "$(wc -l < '${calls}')" -gt 1 ]; then echo '${renewed}'; exit 0; fi`,
    expires,
  });
  const load = () => loadKubeConfig({ kubeconfig: file }).kc;
  const [lease, source] = [createTransport(load(), load), createTransport(load(), load)];
  const get = async (transport: KubeTransport) => {
    const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
    await response.body?.cancel();
    return response.status;
  };
  expect([await get(lease), await get(source), await get(lease)]).toEqual([200, 200, 200]);
  // Was: 2, a run for each transport, as at each start of an ha replica (client-go's authenticators are one per
  // plugin configuration in a process).
  expect(await runs()).toBe(1);
  await waitFor(() => Date.now() > expires.getTime(), 5000, "the credential to expire");
  expect([await get(source), await get(lease)]).toEqual([200, 200]);
  expect(await runs()).toBe(2);
  // A 401 on either forgets it for both: it was refused.
  lease.reloadCredentials();
  expect([await get(source), await get(lease)]).toEqual([200, 200]);
  expect(await runs()).toBe(3);
});

test("transports of a plugin asking at once (two sources starting) wait for one run, as with client-go", async () => {
  const folder = join(suite.dir, "at-once");
  const calls = join(folder, "calls.log");
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nsleep 0.3`,
  });
  const load = () => loadKubeConfig({ kubeconfig: file }).kc;
  const transports = [createTransport(load(), load), createTransport(load(), load)];
  const statuses = await Promise.all(
    transports.map(async (transport) => {
      const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
      await response.body?.cancel();
      return response.status;
    }),
  );
  expect(statuses).toEqual([200, 200]);
  // Was: a run for each.
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run"]);
});

test("interactiveMode: Always is refused at load, as kubectl refuses it without a terminal", async () => {
  const folder = join(suite.dir, "always");
  const calls = join(folder, "calls.log");
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'`,
    exec: { interactiveMode: "Always" },
  });
  // Was: loaded (`--check` said the config is valid), and the plugin run, told it may not prompt.
  expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
    `cannot load kubeconfig ${file}: user "u" has an exec plugin whose interactiveMode is Always: it needs a ` +
      "terminal, which kubemeta has none of (kubectl refuses it too without one): IfAvailable or Never if it can do " +
      "without",
  );
  for (const mode of ["IfAvailable", "Never"]) {
    const other = await execUserKubeconfig(suite, join(folder, mode), "credential", (path) => path, {
      exec: { interactiveMode: mode },
    });
    expect(await answer(other)).toBe("200");
  }
  expect(await Bun.file(calls).exists()).toBe(false);
});

test("a token, token file or client certificate beside the user's exec plugin: not run, as by kubectl", async () => {
  const folder = join(suite.dir, "beside");
  const calls = join(folder, "calls.log");
  await execUserKubeconfig(suite, folder, "credential", (path) => path, { before: `echo run >> '${calls}'\nexit 1` });
  const exec = {
    apiVersion: "client.authentication.k8s.io/v1",
    command: join(folder, "credential"),
    interactiveMode: "Never",
  };
  const tokenFile = await write(join(folder, "token.txt"), suite.server.token);
  const pki = await testPki();
  // As `kubectl config set-credentials u --token=…` leaves a user that had an exec plugin: both.
  for (const [name, credential] of Object.entries({
    token: { token: suite.server.token },
    "token-file": { tokenFile },
    cert: { "client-certificate": pki.clientCertFile, "client-key": pki.clientKeyFile },
  })) {
    const both = await write(
      join(folder, name, "config"),
      kubeconfig({
        clusters: { c: clusterOf(suite.server) },
        users: { u: { ...credential, exec } },
        contexts: { main: { cluster: "c", user: "u" } },
        current: "main",
      }),
    );
    // Was: the plugin run first, its failure failing every request (client-go never runs it then).
    expect(`${name}: ${await answer(both)}`).toBe(`${name}: 200`);
  }
  expect(await Bun.file(calls).exists()).toBe(false);
});

test("one credential for a plugin whatever each kubeconfig names its user (the Lease's, the source's)", async () => {
  const folder = join(suite.dir, "renamed");
  const calls = join(folder, "calls.log");
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'`,
  });
  // The very same `exec`, in the same order: it is the configuration's key.
  const written = Bun.YAML.parse(await Bun.file(file).text()) as { users: { user: { exec: object } }[] };
  const { exec } = written.users[0]!.user;
  const renamed = await write(
    join(folder, "lease", "config"),
    kubeconfig({
      clusters: { c: clusterOf(suite.server) },
      users: { "lease-writer": { exec } },
      contexts: { main: { cluster: "c", user: "lease-writer" } },
      current: "main",
    }),
  );
  const transports = [file, renamed].map((each) => {
    const load = () => loadKubeConfig({ kubeconfig: each }).kc;
    return createTransport(load(), load);
  });
  for (const transport of [...transports, ...transports]) {
    const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
    await response.body?.cancel();
    expect(response.status).toBe(200);
  }
  // client-go's cache is the plugin configuration's, the user's name no part of it (was: a run for each name).
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run"]);
  for (const transport of transports) transport.close();
});

/** The front holds a request whose query has `held` until `release()`: a 401 that comes late. */
const release = Promise.withResolvers<void>();
const front = tlsFront(suite, async ({ pathname, searchParams }) => {
  if (searchParams.has("held")) await release.promise;
  return pathname;
});

test("a late 401, to a request sent with the credential before, forgets not the one a run printed since", async () => {
  const folder = join(suite.dir, "late-401");
  const calls = join(folder, "calls.log");
  const stale = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token: "revoked" },
  });
  // The first run prints a token the API server refuses, the next ones its own.
  const written = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: `echo run >> '${calls}'\nif [ "$(wc -l < '${calls}')" -eq 1 ]; then echo '${stale}'; exit 0; fi`,
  });
  const config = Bun.YAML.parse(await Bun.file(written).text()) as { clusters: { cluster: { server: string } }[] };
  config.clusters[0]!.cluster.server = front.url;
  const file = await write(join(folder, "front", "config"), Bun.YAML.stringify(config));
  const load = () => loadKubeConfig({ kubeconfig: file }).kc;
  const transport = createTransport(load(), load);
  // As the source's request.ts and the Lease's lease.ts take an answer: a 401 reloads, told what it refused.
  const get = async (query = "") => {
    const response = await transport.get(`/api/v1/namespaces${query}`, AbortSignal.timeout(5000));
    await response.body?.cancel();
    if (response.status === 401) transport.reloadCredentials(response);
    return response.status;
  };
  const late = get("?held");
  await waitFor(() => front.seen.some(({ url }) => url.endsWith("?held")), 5000, "the held request to be sent");
  expect([await get(), await get()]).toEqual([401, 200]);
  release.resolve();
  expect([await late, await get()]).toEqual([401, 200]);
  // Was: 3, the late 401 forgetting the credential of the second run too.
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run", "run"]);
  transport.close();
});
