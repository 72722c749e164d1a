/**
 * A kubeconfig user's exec plugin, as kubectl takes it: its configuration checked at load as client-go's
 * validateAuthInfo and authenticator check it, so that `--check` and a start refuse what kubectl refuses; and what
 * client-go tells the plugin when it runs it. Its runs are exec-runs.ts's.
 */
import type { KubeConfig, User } from "@kubernetes/client-node";
import { readCredentialFileSync } from "../sdk/credential-file.ts";

/** The ExecCredential versions client-go runs a plugin of (v1alpha1 went in Kubernetes 1.24). */
const API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];
const MODES = ["Never", "IfAvailable", "Always"];

interface ExecConfig {
  command?: unknown;
  apiVersion?: unknown;
  interactiveMode?: unknown;
  env?: unknown;
  provideClusterInfo?: unknown;
}

/**
 * The user's exec plugin is one kubectl runs, checked whether or not the user's own credentials leave it unused, as
 * client-go's validateAuthInfo checks it: a command, an apiVersion it knows, and an interactiveMode, which a v1 plugin
 * must set (v1beta1's defaults to IfAvailable). client-node would run it all the same, and its output be taken.
 */
export function checkExecConfig(user: User | null): void {
  const exec = user?.exec as ExecConfig | undefined;
  if (!user || !exec) return;
  const owner = `user "${user.name}" has an exec plugin`;
  if (typeof exec.command !== "string" || !exec.command)
    throw new Error(`${owner} without a command (kubectl refuses it too)`);
  if (typeof exec.apiVersion !== "string" || !exec.apiVersion)
    throw new Error(`${owner} without an apiVersion (kubectl refuses it too): ${API_VERSIONS.join(" or ")}`);
  if (!API_VERSIONS.includes(exec.apiVersion))
    throw new Error(
      `${owner} of apiVersion "${exec.apiVersion}", which kubectl runs none of: ${API_VERSIONS.join(" or ")}`,
    );
  if (user.authProvider) throw new Error(`${owner} and an auth-provider: keep one (kubectl refuses both too)`);
  // The variable's value is not quoted: it may be a secret the plugin is given.
  if (Array.isArray(exec.env) && exec.env.some((entry) => typeof entry?.name !== "string" || !entry.name))
    throw new Error(`${owner} whose env has an entry without a name (kubectl refuses it too)`);
  if (exec.interactiveMode === undefined || exec.interactiveMode === "") {
    if (exec.apiVersion !== API_VERSIONS[0]) return;
    throw new Error(
      `${owner} of ${exec.apiVersion} without an interactiveMode, which v1 requires (kubectl refuses it too: ` +
        `"interactiveMode must be specified for ${user.name} to use exec authentication plugin"): Never if the ` +
        "plugin never prompts, else IfAvailable",
    );
  }
  if (!MODES.includes(String(exec.interactiveMode)))
    throw new Error(`${owner} whose interactiveMode is none of ${MODES.join(", ")} (kubectl refuses it too)`);
}

/**
 * client-go runs no plugin that must prompt without a terminal ("exec plugin cannot support interactive mode: standard
 * input is not a terminal"), and kubemeta never has one: refused at load, where --check sees it, not at each request.
 * Only for a plugin the user's own credentials leave in use, as client-go refuses it only when it runs it.
 */
export function refuseInteractive(user: User): void {
  if ((user.exec as ExecConfig | undefined)?.interactiveMode === "Always")
    throw new Error(
      `user "${user.name}" has an exec plugin whose interactiveMode is Always: it needs a terminal, which kubemeta ` +
        "has none of (kubectl refuses it too without one): IfAvailable or Never if it can do without",
    );
}

/**
 * The current user's exec plugin is told what client-go tells one, in `KUBERNETES_EXEC_INFO` (after the user's own
 * `env`, so it wins as there): an ExecCredential whose spec says it may not prompt (kubemeta has no terminal), and,
 * if it sets `provideClusterInfo`, the cluster it makes credentials for, CA read from its file, and the cluster's
 * `client.authentication.k8s.io/exec` extension as its `config` (the plugin's own settings). client-node runs it
 * without: a plugin that reads it to learn its mode or its cluster (a v1 plugin may count on it) went without.
 */
export function tellExecPlugin(kc: KubeConfig, execExtensions: Map<string, unknown>): void {
  const user = kc.getCurrentUser();
  const exec = user?.exec as ExecConfig | undefined;
  if (!user || !exec) return;
  const cluster = kc.getCurrentCluster()!;
  const ca = cluster.caFile ? readCredentialFileSync("its certificate-authority", cluster.caFile) : undefined;
  const info = {
    kind: "ExecCredential",
    apiVersion: exec.apiVersion,
    spec: {
      ...(exec.provideClusterInfo === true
        ? {
            cluster: {
              server: cluster.server,
              "tls-server-name": cluster.tlsServerName,
              "insecure-skip-tls-verify": cluster.skipTLSVerify || undefined,
              "certificate-authority-data": ca?.toString("base64") ?? cluster.caData,
              "proxy-url": cluster.proxyUrl,
              config: execExtensions.get(cluster.name),
            },
          }
        : {}),
      interactive: false,
    },
  };
  const env = [...(Array.isArray(exec.env) ? exec.env : []), { name: EXEC_INFO, value: JSON.stringify(info) }];
  kc.users[kc.users.indexOf(user)] = { ...user, exec: { ...exec, env } };
}

const EXEC_INFO = "KUBERNETES_EXEC_INFO";
