/**
 * A kubeconfig's exec plugin configuration checked as kubectl checks it (client-go's validateAuthInfo at load, its
 * authenticator at each run), each shown with requests over TLS on loopback to the test API server: what kubectl
 * refuses is refused, at load or on the plugin's output, saying why, rather than run and taken.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { createTransport } from "../kube/transport.ts";
import { execUserKubeconfig, kubeconfigSuite } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();
const [V1, V1BETA1] = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];

/** What loading the kubeconfig at `file` fails with, or "loaded". */
function loading(file: string): string {
  try {
    loadKubeConfig({ kubeconfig: file });
    return "loaded";
  } catch (error) {
    return (error as Error).message.replace(`cannot load kubeconfig ${file}: `, "");
  }
}

/** One request with the kubeconfig at `file` (twice the same transport): each one's status, or what it failed with. */
async function answers(file: string): Promise<string[]> {
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => kc);
  try {
    const each = async () => {
      try {
        const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
        await response.body?.cancel();
        return String(response.status);
      } catch (error) {
        return (error as Error).message;
      }
    };
    return [await each(), await each()];
  } finally {
    transport.close();
  }
}

test("a v1 plugin without interactiveMode, or a mode, apiVersion or command kubectl knows not: refused", async () => {
  const folder = join(suite.dir, "refused");
  const config = (name: string, exec: Record<string, unknown>) =>
    execUserKubeconfig(suite, join(folder, name), "credential", (path) => path, { exec });
  // Was: each loaded (`--check` said the config is valid) and its plugin run, where kubectl runs none of them.
  expect(loading(await config("v1", { interactiveMode: undefined }))).toBe(
    `user "u" has an exec plugin of ${V1} without an interactiveMode, which v1 requires (kubectl refuses it too: ` +
      '"interactiveMode must be specified for u to use exec authentication plugin"): Never if the plugin never ' +
      "prompts, else IfAvailable",
  );
  expect(loading(await config("mode", { interactiveMode: "Sometimes" }))).toBe(
    'user "u" has an exec plugin whose interactiveMode is none of Never, IfAvailable, Always (kubectl refuses it too)',
  );
  expect(loading(await config("alpha", { apiVersion: "client.authentication.k8s.io/v1alpha1" }))).toBe(
    'user "u" has an exec plugin of apiVersion "client.authentication.k8s.io/v1alpha1", which kubectl runs none ' +
      `of: ${V1} or ${V1BETA1}`,
  );
  expect(loading(await config("none", { apiVersion: undefined }))).toBe(
    `user "u" has an exec plugin without an apiVersion (kubectl refuses it too): ${V1} or ${V1BETA1}`,
  );
  expect(loading(await config("command", { command: "" }))).toBe(
    'user "u" has an exec plugin without a command (kubectl refuses it too)',
  );
  expect(loading(await config("env", { env: [{ name: "A", value: "1" }, { value: "secret-value" }] }))).toBe(
    'user "u" has an exec plugin whose env has an entry without a name (kubectl refuses it too)',
  );
  const provider = await execUserKubeconfig(suite, join(folder, "provider"), "credential", (path) => path, {
    user: { "auth-provider": { name: "oidc", config: {} } },
  });
  expect(loading(provider)).toBe(
    'user "u" has an exec plugin and an auth-provider: keep one (kubectl refuses both too)',
  );
  // v1beta1's defaults to IfAvailable, as client-go's defaulting has it.
  const beta = await config("beta", { apiVersion: V1BETA1, interactiveMode: undefined });
  expect(await answers(beta)).toEqual(["200", "200"]);
});

test("an ExecCredential of another apiVersion than the kubeconfig's: refused as by client-go; run again", async () => {
  const folder = join(suite.dir, "version");
  const calls = join(folder, "calls.log");
  const other = JSON.stringify({ apiVersion: V1BETA1, kind: "ExecCredential", status: { token: suite.server.token } });
  const bare = JSON.stringify({ kind: "ExecCredential", status: { token: suite.server.token } });
  // The first run prints a v1beta1 one, the second one of no apiVersion, the next ones the v1 the kubeconfig names.
  const file = await execUserKubeconfig(suite, folder, "credential", (path) => path, {
    before: [
      `echo run >> '${calls}'`,
      `if [ "$(wc -l < '${calls}')" -eq 1 ]; then echo '${other}'; exit 0; fi`,
      `if [ "$(wc -l < '${calls}')" -eq 2 ]; then echo '${bare}'; exit 0; fi`,
    ].join("\n"),
  });
  const plugin = `the kubeconfig's exec plugin ${join(folder, "credential")}`;
  // Was: both taken, and their token sent: 200, 200, one run.
  expect(await answers(file)).toEqual([
    `${plugin} printed an ExecCredential of ${V1BETA1}, where the kubeconfig names ${V1} (kubectl refuses it too)`,
    `${plugin} printed an ExecCredential without an apiVersion it knows, where the kubeconfig names ${V1} (kubectl ` +
      "refuses it too)",
  ]);
  expect(await answers(file)).toEqual(["200", "200"]);
  expect((await Bun.file(calls).text()).trim().split("\n")).toEqual(["run", "run", "run"]);
});
