/**
 * The kubeconfig a source or the leader election uses, found the way kubectl finds it (in-cluster service account,
 * else `KUBECONFIG`, else `~/.kube/config`; or the file the config names) and checked at load as kubectl checks it,
 * so that `--check` and a start refuse what would only fail later, request by request. Its files are read and merged
 * by kubeconfig.ts; transport.ts makes the requests.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, resolve as resolvePath } from "node:path";
import type { KubeConfig, User } from "@kubernetes/client-node";
import { checkExecConfig, refuseInteractive, tellExecPlugin } from "./exec-config.ts";
import { impersonate, type Impersonation, unsendable } from "./impersonation.ts";
import { inClusterConfig, inPod } from "./in-cluster.ts";
import { type LoadedKubeconfig, readKubeconfigs } from "./kubeconfig.ts";
import { checkTlsMaterial } from "./tls-files.ts";
import { readTokenFile } from "./token-file.ts";
import { holdsFileContent } from "../sdk/credential-file.ts";
import { clearTextHost, isLoopback } from "../protocol/clear-text.ts";

export interface KubeconfigOptions {
  /** A kubeconfig file; without it, Kubernetes' own resolution. */
  kubeconfig?: string;
  /** A context of the kubeconfig other than its current one. */
  context?: string;
}

/**
 * What the loaded kubeconfig sends where anyone on the network path reads it, said naming the kubeconfig, its cluster
 * and user, never the credential: its user's (a token, a token file's, an exec or auth-provider plugin's, a username
 * and password) unencrypted to an `http://` server not on this machine, or to whoever answers for a server whose
 * certificate is not checked (insecure-skip-tls-verify); its `proxy-url`'s user and password to an `http://` proxy
 * not on this machine (`Proxy-Authorization`, in clear whatever the server's scheme). A client certificate is not: its
 * key is never sent.
 */
export function exposedCredentials(kc: KubeConfig, origin: string): string[] {
  const cluster = kc.getCurrentCluster();
  if (!cluster) return [];
  const proxy = cluster.proxyUrl && URL.canParse(cluster.proxyUrl) ? new URL(cluster.proxyUrl) : undefined;
  const proxyHost = proxy && (proxy.username || proxy.password) ? clearTextHost(proxy.href) : undefined;
  return [
    userCredentials(kc, origin),
    proxyHost === undefined
      ? undefined
      : `kubeconfig ${origin}: cluster "${cluster.name}"'s proxy-url sends its user and password to ${proxyHost} ` +
        "over http://, unencrypted: anyone on the network path reads them",
  ].filter((warning) => warning !== undefined);
}

/** What exposedCredentials says of the user's own credentials. */
function userCredentials(kc: KubeConfig, origin: string): string | undefined {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const sends = user && (user.token || user.username || user.password || user.exec || user.authProvider);
  if (!cluster || !sends || !URL.canParse(cluster.server)) return undefined;
  const owner = `kubeconfig ${origin}: user "${user.name}" sends its credentials to cluster "${cluster.name}" at`;
  const clear = clearTextHost(cluster.server);
  const readers = "anyone on the network path reads them; give the cluster";
  if (clear) return `${owner} ${clear} over http://, unencrypted: ${readers} an https:// server`;
  const { hostname, host } = new URL(cluster.server);
  if (!cluster.skipTLSVerify || isLoopback(hostname)) return undefined;
  const unchecked = "with insecure-skip-tls-verify, so to whoever answers there";
  return `${owner} ${host} ${unchecked}: ${readers} its certificate-authority`;
}

/** The kubeconfig lacks the context the config names: what a config's `context` key says is wrong, not its file. */
export class ContextNotFound extends Error {}

/**
 * Loads the kubeconfig: the given file; else the in-cluster service account; else
 * `KUBECONFIG` (a list of files, merged as kubectl merges them); else `~/.kube/config`. Errors say which
 * file and what is wrong, and quote none of a file's content; `warnings`, what a start says of it and goes on.
 * `inClusterRoot` prefixes the service-account directory (client-node's `loadFromCluster(pathPrefix)`), for tests.
 * `startContexts`: without a `context`, the one recorded for these files, else their current one, then recorded.
 */
export function loadKubeConfig(
  options: KubeconfigOptions,
  inClusterRoot = "",
  startContexts?: Map<string, string>,
): { kc: KubeConfig; origin: string; warnings: string[] } {
  const { kc, origin, files, warnings, tokenFiles, impersonations, execExtensions } = resolve(options, inClusterRoot);
  const names = kc.getContexts().map((c) => c.name);
  const contexts = `(contexts: ${names.join(", ") || "none"})`;
  const started = options.context ? undefined : startContexts?.get(files);
  if (started && !kc.getContextObject(started)) {
    const gone = `has no context "${started}", its current one when kubemeta started`;
    throw new Error(`kubeconfig ${origin} ${gone} ${contexts}`);
  }
  if (options.context && !kc.getContextObject(options.context))
    throw new ContextNotFound(`kubeconfig ${origin} has no context "${options.context}" ${contexts}`);
  const context = options.context ?? started;
  if (context) kc.setCurrentContext(context);
  checkContext(kc, origin, contexts);
  const cluster = kc.getCurrentCluster()!;
  if (cluster.proxyUrl?.startsWith("socks"))
    throw new Error(`kubeconfig ${origin}: SOCKS proxy-url is not supported (Bun's fetch speaks HTTP proxies only)`);
  try {
    withScheme(kc);
    checkExecConfig(kc.getCurrentUser());
    withoutUnusedExec(kc, tokenFiles);
    checkFileOrData(kc, tokenFiles);
    checkTlsMaterial(kc);
    readTokenFile(kc, tokenFiles);
    impersonateAs(kc, impersonations);
    tellExecPlugin(kc, execExtensions);
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${origin}: ${(err as Error).message}`);
  }
  if (startContexts && !options.context && !startContexts.has(files)) startContexts.set(files, kc.getCurrentContext());
  return { kc, origin, warnings };
}

/** What each kubeconfig's loads warned of last, by its origin: said once by the process, not at each load. */
const warnedOf = new Map<string, string>();

/**
 * Of a load's `warnings`, those this process is to say: none when its last load of the same kubeconfig warned of the
 * same (a source started again, supervised or at each `ha` term, the `ha` Lease's own load), all once they change.
 */
export function unsaid(origin: string, warnings: string[]): string[] {
  const said = warnings.join("\n");
  if (warnedOf.get(origin) === said) return [];
  warnedOf.set(origin, said);
  return warnings;
}

/** The context each kubeconfig no `context` names was first loaded in by this process, by the files it is read from. */
const contextsAtStart = new Map<string, string>();

/**
 * The kubeconfig as the sources and the `ha` Lease load it, and how their transport reloads it after a 401: without a
 * `context`, in its current context when this process first loaded it (at the start: the Lease's, a source's), for
 * the process's life, as a running `kubectl get -w` keeps its cluster. Each `ha` term starts the sources anew: a
 * current context switched meanwhile (`kubectl config use-context`) would move them, after a Lease lost and won
 * again, to another cluster, into the same store, each object of the first told gone and the other's new.
 */
export function loadForProcess(options: KubeconfigOptions) {
  const load = () => loadKubeConfig(options, "", contextsAtStart);
  return { ...load(), reload: () => load().kc };
}

/** Loads the kubeconfig: where from, and the token files of its users (in a cluster, the service account's). */
function resolve(
  options: KubeconfigOptions,
  inClusterRoot: string,
): { kc: KubeConfig; origin: string; files: string; warnings: string[] } & Omit<LoadedKubeconfig, "kc"> {
  const env = process.env;
  // $HOME first, as kubectl and client-node do (Bun's homedir() ignores a changed $HOME).
  const home = env.HOME || homedir();
  if (options.kubeconfig) {
    const file = options.kubeconfig.startsWith("~/") ? join(home, options.kubeconfig.slice(2)) : options.kubeconfig;
    return withContexts(file, [file], readKubeconfigs([file]));
  }
  if (inPod(inClusterRoot)) return inClusterConfig(inClusterRoot);
  if (env.KUBECONFIG && holdsFileContent(env.KUBECONFIG))
    throw new Error(
      "KUBECONFIG holds what a kubeconfig holds (a line break, a mapping, a PEM block or a JWT, or their base64), " +
        "not a list of files: write the kubeconfig to a file and set KUBECONFIG to its path",
    );
  // Each file once, as client-go reads the list.
  const listed = [...new Set(env.KUBECONFIG?.split(delimiter).filter(Boolean))];
  if (listed.length > 0) {
    const origin = `KUBECONFIG=${env.KUBECONFIG}`;
    return withContexts(origin, listed, readKubeconfigs(listed, origin));
  }
  const file = join(home, ".kube", "config");
  if (!existsSync(file)) {
    throw new Error(`no kubeconfig found: not running in a cluster, KUBECONFIG is not set and ${file} does not exist`);
  }
  return withContexts(file, [file], readKubeconfigs([file]));
}

/** `files`: the same files however named (`KUBECONFIG`, a `kubeconfig` key), one key of loadKubeConfig's contexts. */
function withContexts(origin: string, files: string[], loaded: ReturnType<typeof readKubeconfigs>) {
  if (loaded.kc.getContexts().length === 0) throw new Error(`kubeconfig ${origin} defines no context`);
  return { ...loaded, origin, files: files.map((file) => resolvePath(file)).join(delimiter), warnings: [] };
}

/** A context with no user is kubectl's anonymous user: an empty one, so that client-node still applies the CA. */
const NO_USER = "kubemeta: the context names no user";

/**
 * The current context, its cluster and its user exist, as kubectl requires: client-node would go on without a user
 * and, without one, drop the cluster's CA and insecure-skip-tls-verify (a certificate error, not the cause).
 */
function checkContext(kc: KubeConfig, origin: string, contexts: string): void {
  const name = kc.getCurrentContext();
  if (!name) throw new Error(`kubeconfig ${origin} sets no current-context, and no context is named ${contexts}`);
  const context = kc.getContextObject(name);
  if (!context) throw new Error(`kubeconfig ${origin}: current context "${name}" does not exist ${contexts}`);
  const missing = (what: string, value: string) =>
    new Error(`kubeconfig ${origin}: context "${name}" names ${what} "${value}", which the kubeconfig does not define`);
  if (!kc.getCluster(context.cluster)) throw missing("cluster", context.cluster);
  if (context.user === undefined) {
    if (!kc.getUser(NO_USER)) kc.users.push({ name: NO_USER });
    kc.contexts[kc.contexts.indexOf(context)] = { ...context, user: NO_USER };
  } else if (!kc.getUser(context.user)) {
    throw missing("user", context.user);
  }
}

/**
 * The current cluster's `server` with a scheme, as client-go gives one that has none (`10.0.0.1:6443`): `https://`
 * if the cluster or its user has TLS settings (a CA, insecure-skip-tls-verify, a client certificate), else `http://`.
 * Bun's fetch would refuse each request (`fetch() URL is invalid`), and one of another scheme too.
 */
function withScheme(kc: KubeConfig): void {
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser();
  let server = cluster.server;
  // One that names its scheme keeps it: `https://exa mple:6443`, no URL, prefixed again would parse (host `https`).
  if (!server.includes("://") && (!URL.canParse(server) || !new URL(server).host)) {
    const tls = cluster.caFile || cluster.caData || cluster.skipTLSVerify || user?.certFile || user?.certData;
    server = `${tls ? "https" : "http"}://${server}`;
  }
  if (!URL.canParse(server) || !["http:", "https:"].includes(new URL(server).protocol) || !new URL(server).host)
    throw new Error(`cluster "${cluster.name}" has a server URL that is no http:// nor https:// one`);
  kc.clusters[kc.clusters.indexOf(cluster)] = { ...cluster, server };
}

/**
 * The context in use names each certificate and key once, a file or inline data, as kubectl requires: client-go's
 * ConfirmUsable refuses both ("certificate-authority-data and certificate-authority are both specified for c.
 * certificate-authority-data will override.", an error all the same), where client-node would take the file and drop
 * the data. And a CA only for a server whose certificate is verified: client-node would skip the check silently.
 */
function checkFileOrData(kc: KubeConfig, tokenFiles: Map<string, string>): void {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const pairs = [
    [`cluster "${cluster?.name}"`, "certificate-authority", cluster?.caFile, cluster?.caData],
    [`user "${user?.name}"`, "client-certificate", user?.certFile, user?.certData],
    [`user "${user?.name}"`, "client-key", user?.keyFile, user?.keyData],
  ] as const;
  const both = pairs
    .filter(([, , file, data]) => file && data)
    .map(([owner, key]) => `${owner} has both ${key} and ${key}-data (kubectl refuses both too): keep one`);
  // client-go's TLSConfigFor refuses it for every request: the CA would be ignored, the server never verified.
  const ca = cluster?.caFile ? "certificate-authority" : cluster?.caData ? "certificate-authority-data" : undefined;
  if (cluster?.skipTLSVerify && ca)
    both.push(
      `cluster "${cluster.name}" has both insecure-skip-tls-verify and ${ca} (kubectl refuses both too: specifying ` +
        "a root certificates file with the insecure flag is not allowed): keep one",
    );
  if (both.length > 0) throw new Error(both.join("; "));
  if (user) checkUserMethods(user, tokenFiles.has(user.name));
}

/**
 * As client-go's validateAuthInfo: a client certificate goes with its key (either alone fails every TLS handshake, far
 * from the cause), and a token or token file excludes a username and password (which one a server would see is no
 * user's choice: Basic, the transport setting it last). An exec plugin's own rules are exec-config.ts's.
 */
function checkUserMethods(user: User, hasTokenFile: boolean): void {
  const owner = `user "${user.name}"`;
  const hasCert = Boolean(user.certFile || user.certData);
  const hasKey = Boolean(user.keyFile || user.keyData);
  if (hasCert && !hasKey)
    throw new Error(`${owner} has a client-certificate without its client-key (kubectl refuses it too): add the key`);
  if (hasKey && !hasCert)
    throw new Error(`${owner} has a client-key without its client-certificate (kubectl refuses it too): add it`);
  if ((user.token || hasTokenFile) && (user.username || user.password)) {
    const token = user.token ? "a token" : "a token file";
    throw new Error(`${owner} has both ${token} and a username or password (kubectl refuses both too): keep one`);
  }
  if (user.exec) refuseInteractive(user);
}

/**
 * What the current user impersonates beyond `as`, sent by the transport (client-node drops it): only with a user to
 * impersonate, as client-go's validation has it (the API server would refuse such a request).
 */
function impersonateAs(kc: KubeConfig, impersonations: Map<string, Impersonation>): void {
  const user = kc.getCurrentUser();
  const impersonation = user && impersonations.get(user.name);
  if (!user || !impersonation) return;
  if (!user.impersonateUser)
    throw new Error(
      `user "${user.name}" impersonates groups, a uid or extra without a user to impersonate (as; kubectl refuses ` +
        "it too)",
    );
  const unsent = unsendable(impersonation);
  if (unsent) throw new Error(`user "${user.name}" impersonates ${unsent}`);
  impersonate(kc, impersonation);
}

/**
 * The current user's exec plugin left out when the user has credentials of its own (a token or token file, a username,
 * a client certificate and key), as client-go installs no exec authenticator for such a user (`kubectl config
 * set-credentials u --token=…` on a user with a plugin keeps both): client-node would run it first, and its failure
 * would fail every request that the user's own credentials would have carried.
 */
function withoutUnusedExec(kc: KubeConfig, tokenFiles: Map<string, string>): void {
  const user = kc.getCurrentUser();
  if (!user?.exec) return;
  const hasCert = (user.certFile || user.certData) && (user.keyFile || user.keyData);
  if (user.token || tokenFiles.has(user.name) || user.username || hasCert)
    kc.users[kc.users.indexOf(user)] = { ...user, exec: undefined };
}
