/**
 * `KUBECONFIG` holding a kubeconfig's content rather than its path (a CI system's variable of the wrong type, `export
 * KUBECONFIG="$(cat config)"`), with no `kubeconfig` in the config: read as a list of files, it was quoted by the
 * failed read, its token with it, in the log and on `/readyz`, which answers anyone who reaches the port.
 */
import { afterAll, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as v from "valibot";
import { loadKubeConfig } from "../kube/load.ts";
import { credentialPath } from "../sdk/schema.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { withEnv } from "./kubeconfig-fixtures.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

const TOKEN = "kubetoken-in-env-Hq4Zr8Mx1Vd";
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

test("KUBECONFIG holding a kubeconfig: the source says so, and neither /readyz nor the log quotes it", async () => {
  const work = await tempDir("kubemeta-kubeconfig-env-");
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const config = {
    store: { type: "libsql", url: "file:./data/k.db" },
    sources: [{ type: "kubernetes" }],
    http: { address: "127.0.0.1", port: 0, tokens: ["http-token-0123456789"] },
  };
  await writeFile(join(work, "kubemeta.yaml"), JSON.stringify(config));
  const kubeconfig = [
    "apiVersion: v1",
    "kind: Config",
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]",
    `users: [{name: u, user: {token: ${TOKEN}}}]`,
    "contexts: [{name: x, context: {cluster: c, user: u}}]",
    "current-context: x",
  ].join("\n");
  const env: Record<string, string | undefined> = { ...process.env, KUBECONFIG: kubeconfig };
  delete env.KUBERNETES_SERVICE_HOST;
  const child = Bun.spawn([process.execPath, "run", MAIN, "--config", "kubemeta.yaml"], {
    cwd: work,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const [stdout, stderr] = [new Output(child.stdout), new Output(child.stderr)];
  const url = (await stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 20_000))[1]!.replace(/\/$/, "");
  let readyz = "";
  await waitFor(
    async () => {
      readyz = await (await fetch(`${url}/readyz`)).text();
      return readyz.includes("cannot load the kubeconfig");
    },
    10_000,
    "/readyz naming the kubeconfig",
  );
  expect(readyz).not.toContain(TOKEN);
  expect(readyz).toContain("KUBECONFIG holds what a kubeconfig holds");
  child.kill("SIGTERM");
  expect(await exitWithin(child, 20_000)).toBe(0);
  const output = `${await stdout.all()}\n${await stderr.all()}`;
  expect(output).not.toContain(TOKEN);
}, 40_000);

test("KUBECONFIG or a kubeconfig key holding a kubeconfig in base64 (base64 -w0): refused, not quoted", () => {
  const content = `apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: ${TOKEN}}\n`;
  for (const encoded of [Buffer.from(content).toString("base64"), Buffer.from(content).toString("base64url")]) {
    const env = { KUBECONFIG: encoded, KUBERNETES_SERVICE_HOST: undefined };
    const error = withEnv(env, () => {
      try {
        loadKubeConfig({});
      } catch (err) {
        return (err as Error).message;
      }
    });
    expect(error).toContain("KUBECONFIG holds what a kubeconfig holds");
    expect(error).not.toContain(encoded.slice(0, 16));
    const issues = v.safeParse(credentialPath, encoded).issues?.map((issue) => issue.message) ?? [];
    expect(issues.join()).toContain("holds what a file holds");
    expect(issues.join()).not.toContain(encoded.slice(0, 16));
  }
  // A path is never taken for one: read as base64 it is no text.
  for (const path of ["/home/runner/work/repo/kubeconfig", "/etc/kubernetes/admin.conf", "kubeconfig-production-eu"])
    expect(v.safeParse(credentialPath, path).success).toBe(true);
});
