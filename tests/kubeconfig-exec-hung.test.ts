/**
 * A kubeconfig's exec plugin that never exits (a cloud CLI waiting on a network that does not answer): kubemeta runs
 * it once at a time, whatever the reloads meanwhile, and leaves none of its runs behind when it stops, the plugin's
 * own children included: a real main.ts, as a source's kubeconfig and as the ha Lease's, stopped by SIGTERM.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { chmod, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { createTransport, type KubeTransport } from "../kube/transport.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

const dir = await tempDir("kubemeta-exec-hung-");
/** Every pid a plugin wrote, killed at the end whatever the outcome: a run left behind is what is tested. */
const pidFiles: string[] = [];
afterAll(async () => {
  for (const pid of pidFiles.flatMap(pidsIn)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone, as it should be.
    }
  }
  await rm(dir, { recursive: true, force: true });
});

function pidsIn(file: string): number[] {
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map(Number) : [];
}

/** The plugin's pid and its child's, once its first run has written both. */
async function firstRun(pids: string): Promise<[number, number]> {
  const run = () => {
    const [plugin, child] = pidsIn(pids);
    return plugin && child ? ([plugin, child] as [number, number]) : undefined;
  };
  return waitFor(run, 20_000, `the plugin's run to write its pids to ${pids}`);
}

/** Running, not a zombie waiting to be reaped by whoever inherited it. */
function alive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  return existsSync(stat) && !/^\d+ \(.*\) Z/.test(readFileSync(stat, "utf8"));
}

/**
 * A kubeconfig in `folder` whose user's exec plugin writes its pid and its child's (a `sleep` it waits for) to `pids`,
 * and never prints anything. The server is never reached: no credentials, no request.
 */
async function hungPluginKubeconfig(folder: string) {
  const [plugin, pids] = [join(folder, "credential"), join(folder, "pids")];
  pidFiles.push(pids);
  await Bun.write(plugin, `#!/bin/sh\necho $$ >> '${pids}'\nsleep 100000 &\necho $! >> '${pids}'\nwait\n`);
  await chmod(plugin, 0o755);
  const kubeconfig = join(folder, "kubeconfig");
  await Bun.write(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true } }]",
      "contexts: [{ name: main, context: { cluster: c, user: u } }]",
      "current-context: main",
      "users:",
      "- name: u",
      "  user:",
      `    exec: { apiVersion: client.authentication.k8s.io/v1, command: '${plugin}', interactiveMode: Never }`,
    ].join("\n"),
  );
  return { kubeconfig, pids };
}

/** Runs main.ts on `config` until the plugin runs, then SIGTERM: it exits 0, and the plugin's processes are gone. */
async function stopsWithoutLeavingIt(folder: string, config: string[], pids: string) {
  await Bun.write(join(folder, "kubemeta.yaml"), config.join("\n"));
  const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", "kubemeta.yaml"], {
    cwd: folder,
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Output(proc.stdout);
  try {
    const [plugin, child] = await firstRun(pids);
    expect([plugin, child].map(alive)).toEqual([true, true]);
    proc.kill("SIGTERM");
    expect(await exitWithin(proc, 10_000)).toBe(0);
    // Was: both running still, children of init, after kubemeta had exited.
    await waitFor(() => !alive(plugin) && !alive(child), 5_000, `pids ${plugin} and ${child} to be gone`);
    expect(pidsIn(pids)).toHaveLength(2);
  } catch (error) {
    proc.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\nkubemeta said:\n${stdout.text}`);
  }
}

test("a source's exec plugin that never exits: SIGTERM stops kubemeta, and the plugin with its child", async () => {
  const folder = join(dir, "source");
  const { kubeconfig, pids } = await hungPluginKubeconfig(folder);
  const config = [
    "store: { type: libsql, url: file:./data/kubemeta.db }",
    `sources: [{ type: kubernetes, kubeconfig: '${kubeconfig}', resources: [pods], inactivityTimeout: 300ms }]`,
    "http: { address: 127.0.0.1, port: 0 }",
  ];
  await stopsWithoutLeavingIt(folder, config, pids);
});

test("the ha Lease's exec plugin that never exits: SIGTERM stops the replica, the plugin and its child", async () => {
  const folder = join(dir, "ha");
  const { kubeconfig, pids } = await hungPluginKubeconfig(folder);
  const token = "store-token-0123456789abcdef";
  const store = startHranaServer({ path: join(folder, "store", "kubemeta.db"), token });
  try {
    const config = [
      `store: { type: libsql, url: "${store.url}", authToken: ${token} }`,
      `ha: { enabled: true, identity: r0, kubeconfig: '${kubeconfig}', lease: { name: kubemeta, namespace: default } }`,
      "http: { address: 127.0.0.1, port: 0 }",
    ];
    await stopsWithoutLeavingIt(folder, config, pids);
  } finally {
    await store.stop();
  }
});

test("reloads while the plugin runs start no other run; close() ends it; the next request runs it anew", async () => {
  const { kubeconfig, pids } = await hungPluginKubeconfig(join(dir, "reloads"));
  const load = () => loadKubeConfig({ kubeconfig }).kc;
  const transport = createTransport(load(), load);
  const given = () => transport.get("/api/v1/pods", AbortSignal.timeout(100)).catch((error: Error) => error.message);
  const hung = `no credentials: the kubeconfig's exec plugin ${join(dir, "reloads", "credential")} has not exited`;
  expect(await given()).toBe(hung);
  const [plugin, child] = await firstRun(pids);
  // As each resource's request refused with a 401 at once (a token revoked) reloads, then tries again.
  for (let i = 0; i < 3; i++) {
    transport.reloadCredentials();
    expect(await given()).toBe(hung);
  }
  // Was: a run more for each reload, all four running.
  expect(pidsIn(pids)).toEqual([plugin, child]);
  transport.close();
  // At once, the killed run's end not heard yet: the request runs the plugin anew rather than join the run killed.
  expect(await given()).toBe(hung);
  await waitFor(() => !alive(plugin) && !alive(child), 5_000, `pids ${plugin} and ${child} to be gone`);
  await waitFor(() => pidsIn(pids).length === 4, 5_000, "the plugin's next run");
  transport.close();
});

test("a run two transports wait for (a source's, the Lease's) outlives the close of one, not of both", async () => {
  const { kubeconfig, pids } = await hungPluginKubeconfig(join(dir, "shared"));
  const load = () => loadKubeConfig({ kubeconfig }).kc;
  const [source, lease] = [createTransport(load(), load), createTransport(load(), load)];
  const given = (transport: KubeTransport, ms: number) =>
    transport.get("/api/v1/pods", AbortSignal.timeout(ms)).catch((error: Error) => error.message);
  const hung = `no credentials: the kubeconfig's exec plugin ${join(dir, "shared", "credential")} has not exited`;
  expect(await given(source, 100)).toBe(hung);
  const [plugin, child] = await firstRun(pids);
  const leaseWaits = given(lease, 1000);
  source.close();
  // Was: `… was killed by SIGKILL, and wrote nothing on stderr`, the Lease's request failed by the source's stop.
  expect(await leaseWaits).toBe(hung);
  expect([plugin, child].map(alive)).toEqual([true, true]);
  expect(pidsIn(pids)).toEqual([plugin, child]);
  lease.close();
  await waitFor(() => !alive(plugin) && !alive(child), 5_000, `pids ${plugin} and ${child} to be gone`);
});
