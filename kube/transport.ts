/**
 * kubeconfig → requests, for the source's lists and watches and for the leader election's
 * Lease writes. The kubeconfig's files are read and merged by kubectl's rules (kubeconfig.ts);
 * client-node computes credentials (tokens, client certificates, exec plugins, in-cluster
 * service account); the requests go out through Bun's own fetch with the TLS settings passed
 * explicitly, because client-node's fetch path puts them on an undici Agent that Bun
 * ignores (DESIGN.md, "Pitfalls": LIST fails with UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import type { RequestOptions } from "node:https";
import { KubeConfig, type User } from "@kubernetes/client-node";
import { readKubeconfigs } from "./kubeconfig.ts";
import { readCredentialFileSync } from "../sdk/credential-file.ts";

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeconfigOptions {
  /** A kubeconfig file; without it, Kubernetes' own resolution. */
  kubeconfig?: string;
  /** A context of the kubeconfig other than its current one. */
  context?: string;
}

/** The kubeconfig lacks the context the config names: what a config's `context` key says is wrong, not its file. */
export class ContextNotFound extends Error {}

/**
 * Loads the kubeconfig: the given file; else the in-cluster service account; else
 * `KUBECONFIG` (a list of files, merged as kubectl merges them); else `~/.kube/config`. Errors say which
 * file and what is wrong, and quote none of a file's content. `inClusterRoot` prefixes the service-account
 * directory (client-node's `loadFromCluster(pathPrefix)`), for tests.
 */
export function loadKubeConfig(options: KubeconfigOptions, inClusterRoot = ""): { kc: KubeConfig; origin: string } {
  const { kc, origin, tokenFiles } = resolve(options, inClusterRoot);
  const names = kc.getContexts().map((c) => c.name);
  const contexts = `(contexts: ${names.join(", ") || "none"})`;
  if (options.context) {
    if (!kc.getContextObject(options.context))
      throw new ContextNotFound(`kubeconfig ${origin} has no context "${options.context}" ${contexts}`);
    kc.setCurrentContext(options.context);
  }
  checkContext(kc, origin, contexts);
  const cluster = kc.getCurrentCluster()!;
  if (cluster.proxyUrl?.startsWith("socks"))
    throw new Error(`kubeconfig ${origin}: SOCKS proxy-url is not supported (Bun's fetch speaks HTTP proxies only)`);
  try {
    checkFileOrData(kc);
    checkFilesReadable(kc);
    readTokenFile(kc, tokenFiles);
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${origin}: ${(err as Error).message}`);
  }
  return { kc, origin };
}

/** Loads the kubeconfig: where from, and the token files of its users (none in a cluster). */
function resolve(
  options: KubeconfigOptions,
  inClusterRoot: string,
): { kc: KubeConfig; origin: string; tokenFiles: Map<string, string> } {
  const env = process.env;
  // $HOME first, as kubectl and client-node do (Bun's homedir() ignores a changed $HOME).
  const home = env.HOME || homedir();
  if (options.kubeconfig) {
    const file = options.kubeconfig.startsWith("~/") ? join(home, options.kubeconfig.slice(2)) : options.kubeconfig;
    return withContexts(file, readKubeconfigs([file]));
  }
  if (
    env.KUBERNETES_SERVICE_HOST &&
    env.KUBERNETES_SERVICE_PORT &&
    existsSync(`${inClusterRoot}${SERVICE_ACCOUNT_DIR}/token`)
  ) {
    const kc = new KubeConfig();
    kc.loadFromCluster(inClusterRoot);
    return { kc, origin: "in-cluster service account", tokenFiles: new Map() };
  }
  // Each file once, as client-go reads the list.
  const listed = [...new Set(env.KUBECONFIG?.split(delimiter).filter(Boolean))];
  if (listed.length > 0) {
    const origin = `KUBECONFIG=${env.KUBECONFIG}`;
    return withContexts(origin, readKubeconfigs(listed, origin));
  }
  const file = join(home, ".kube", "config");
  if (!existsSync(file)) {
    throw new Error(`no kubeconfig found: not running in a cluster, KUBECONFIG is not set and ${file} does not exist`);
  }
  return withContexts(file, readKubeconfigs([file]));
}

function withContexts(origin: string, loaded: ReturnType<typeof readKubeconfigs>) {
  if (loaded.kc.getContexts().length === 0) throw new Error(`kubeconfig ${origin} defines no context`);
  return { ...loaded, origin };
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
 * The context in use names each certificate and key once, a file or inline data, as kubectl requires: client-go's
 * ConfirmUsable refuses both ("certificate-authority-data and certificate-authority are both specified for c.
 * certificate-authority-data will override.", an error all the same), where client-node would take the file and drop
 * the data. And a CA only for a server whose certificate is verified: client-node would skip the check silently.
 */
function checkFileOrData(kc: KubeConfig): void {
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
  if (user) checkUserMethods(user);
}

/**
 * As client-go's validateAuthInfo: a client certificate goes with its key (either alone fails every TLS handshake, far
 * from the cause), and a token excludes a username and password (which one a server would see is no user's choice).
 */
function checkUserMethods(user: User): void {
  const owner = `user "${user.name}"`;
  const hasCert = Boolean(user.certFile || user.certData);
  const hasKey = Boolean(user.keyFile || user.keyData);
  if (hasCert && !hasKey)
    throw new Error(`${owner} has a client-certificate without its client-key (kubectl refuses it too): add the key`);
  if (hasKey && !hasCert)
    throw new Error(`${owner} has a client-key without its client-certificate (kubectl refuses it too): add it`);
  if (user.token && (user.username || user.password))
    throw new Error(`${owner} has both a token and a username or password (kubectl refuses both too): keep one`);
}

/**
 * The files of the context in use (its cluster's CA, its user's client certificate and key) can be read, as kubectl
 * checks at load (client-go's ConfirmUsable): they are read only with each request (withFilesRead), so a missing one
 * would pass `--check` and then fail every list and watch.
 */
function checkFilesReadable(kc: KubeConfig): void {
  const user = kc.getCurrentUser();
  const files = [
    ["certificate-authority", kc.getCurrentCluster()?.caFile],
    ["client-certificate", user?.certFile],
    ["client-key", user?.keyFile],
  ] as const;
  for (const [key, file] of files) if (file) readCredentialFileSync(`its ${key}`, file);
}

/**
 * The current user's token file (`tokenFile`, kubectl's key, or `token-file`), read here rather than by client-node
 * (which knows only `token-file`, reads it for every user and relative to the working directory): only the user the
 * context names, as client-go reads it (other users may name files long gone), the one the merge kept, relative to
 * the file that defines it, and trimmed; read again with the rest on every reload, so a rotated token is picked up.
 * A user with a `token` too sends the file's as client-go does (the file's last read wins over the inline token,
 * which is only the fallback while the file cannot be read): the inline one is often a snapshot the file replaced.
 */
function readTokenFile(kc: KubeConfig, tokenFiles: Map<string, string>): void {
  const current = kc.getCurrentUser();
  const file = current && tokenFiles.get(current.name);
  if (!current || !file) return;
  let token: string;
  try {
    token = readCredentialFileSync("its token file", file).toString("utf8").trim();
  } catch (error) {
    if (current.token) return;
    throw error;
  }
  // client-go's file token source refuses an empty file, and its request then keeps the inline token.
  if (!token && current.token) return;
  kc.users[kc.users.indexOf(current)] = { ...current, token };
}

/** What a write sends: a JSON body (serialized here) for POST, PUT and PATCH. */
export interface KubeRequestInit {
  body?: unknown;
  /** Default `application/json`; a PATCH names its kind (e.g. `application/merge-patch+json`). */
  contentType?: string;
  signal: AbortSignal;
}

export type KubeMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface KubeTransport {
  /** The API server's base URL. */
  readonly server: string;
  /** Sends a GET for `pathAndQuery` (e.g. `/api/v1/pods?limit=500`) with the current credentials. */
  get(pathAndQuery: string, signal: AbortSignal): Promise<Response>;
  /** Sends any request with the current credentials; the response is the caller's, whatever its status. */
  request(method: KubeMethod, pathAndQuery: string, init: KubeRequestInit): Promise<Response>;
  /**
   * Reloads the kubeconfig and forgets cached credentials: after a 401, when a token
   * file was rotated, a client certificate renewed or an exec credential revoked.
   */
  reloadCredentials(): void;
}

/** No credentials to send (an exec plugin that failed, a token file gone): the request never left. */
export class CredentialsError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "CredentialsError";
  }
}

/** `reload` loads the kubeconfig again, the way `initial` was loaded. */
export function createTransport(initial: KubeConfig, reload: () => KubeConfig): KubeTransport {
  let kc = initial;
  let server = kc.getCurrentCluster()!.server;
  /**
   * The credentials being worked out, shared by the requests that ask meanwhile: at start every resource asks at
   * once, and client-node, whose cache is empty then, would run an exec plugin (a cloud CLI, an IAM call) for each.
   */
  let working: ReturnType<typeof fetchOptions> | undefined;
  async function request(method: KubeMethod, pathAndQuery: string, init: KubeRequestInit): Promise<Response> {
    const cluster = kc.getCurrentCluster()!;
    working ??= fetchOptions(kc).finally(() => {
      working = undefined;
    });
    const options = await untilGivenUp(working, init.signal, kc).catch((error: unknown) => {
      throw new CredentialsError(error);
    });
    // Each request its own headers: a content type is set on them below.
    const [headers, tls] = [new Headers(options.headers), options.tls];
    const hasBody = init.body !== undefined;
    if (hasBody) headers.set("Content-Type", init.contentType ?? "application/json");
    return fetch(`${server}${pathAndQuery}`, {
      method,
      headers,
      tls,
      // The API server never redirects a client: an answer from wherever a 3xx points (an empty list, say) would be
      // taken for the cluster's. A 3xx is a failed request, retried like any other.
      redirect: "manual",
      signal: init.signal,
      ...(hasBody ? { body: JSON.stringify(init.body) } : {}),
      ...(cluster.proxyUrl ? { proxy: cluster.proxyUrl } : {}),
    });
  }
  return {
    get server() {
      return server;
    },
    get: (pathAndQuery, signal) => request("GET", pathAndQuery, { signal }),
    request,
    reloadCredentials() {
      kc = reload();
      server = kc.getCurrentCluster()!.server;
      working = undefined;
    },
  };
}

/**
 * The credentials being worked out, waited for until the request is given up (its deadline, a stop): an exec plugin
 * that never exits (a cloud CLI waiting on a network that does not answer) would hold every request for good, and
 * silently. The plugin is not run again meanwhile: the next request waits for the same run.
 */
function untilGivenUp<T>(working: Promise<T>, signal: AbortSignal, kc: KubeConfig): Promise<T> {
  return new Promise((resolve, reject) => {
    const givenUp = () => {
      const command = execCommand(kc);
      const waitedFor = command ? `the kubeconfig's exec plugin ${command} has not exited` : "none yet";
      reject(new Error(`no credentials: ${waitedFor}`));
    };
    if (signal.aborted) return givenUp();
    signal.addEventListener("abort", givenUp, { once: true });
    working.then(resolve, reject).finally(() => signal.removeEventListener("abort", givenUp));
  });
}

/** The current user's exec credential plugin, if it has one. */
function execCommand(kc: KubeConfig): string | undefined {
  const command = (kc.getCurrentUser()?.exec as { command?: unknown } | undefined)?.command;
  return command ? String(command) : undefined;
}

/** Of a plugin's stderr, what a reason in /readyz and a log line hold (as of an API server's error body). */
const MAX_PLUGIN_STDERR = 500;

/**
 * What client-node's exec authenticator rejects with, said as the plugin's failure: its stderr alone (or nothing at
 * all, for a plugin that exits non-zero and says nothing), and the JSON parser's error on its output, which quotes the
 * output: a plugin that prints its token bare would put the token in the log and /readyz.
 */
function execFailure(command: string, err: unknown): Error {
  const plugin = `the kubeconfig's exec plugin ${command}`;
  if (err instanceof SyntaxError) return new Error(`${plugin} printed no ExecCredential: its output is not JSON`);
  const said = err instanceof Error ? err.message.trim() : String(err);
  if (!said) return new Error(`${plugin} failed, and wrote nothing on stderr`);
  return new Error(`${plugin} failed: ${said.slice(0, MAX_PLUGIN_STDERR)}`);
}

/**
 * Headers and TLS settings for one request. `applyToHTTPSOptions` is client-node's
 * public way to get everything a request needs; it runs the authenticators on every
 * call, so exec credentials are renewed when they expire and the in-cluster token
 * file is re-read (client-node re-reads it every 60 s).
 */
export async function fetchOptions(kc: KubeConfig): Promise<{ headers: Headers; tls: BunFetchRequestInitTLS }> {
  const options: RequestOptions = {};
  const withFiles = withFilesRead(kc);
  try {
    await withFiles.applyToHTTPSOptions(options);
  } catch (err) {
    // For a plain http:// server (kubectl proxy, --demo) without insecure-skip-tls-verify,
    // client-node refuses to build its https.Agent, the last step, once the options are
    // complete. The agent is not used here, and kubectl speaks plain HTTP too.
    if (!(kc.getCurrentCluster()?.server.startsWith("http:") && /HTTP protocol is not allowed/.test(String(err)))) {
      // With the files read, what fails in between is the authenticator, for a user with exec: the plugin's run.
      const command = execCommand(kc);
      throw command ? execFailure(command, err) : err;
    }
  }
  // Bun's fetch asks for gzip, deflate, br and zstd unless told otherwise, and kube-apiserver gzips a LIST page past
  // 128 KiB for a client that asks: CPU on the control plane (and here) for every page, to save bandwidth that a
  // cluster's own network has. kube-scheduler and kube-controller-manager turn it off for the same reason
  // (client-go's DisableCompression: kubernetes/kubernetes#80919, #112296).
  const headers = new Headers({ Accept: "application/json", "Accept-Encoding": "identity", "User-Agent": "kubemeta" });
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers.set(name, String(value).trim());
  }
  if (options.auth) headers.set("Authorization", `Basic ${Buffer.from(options.auth).toString("base64")}`);
  const tls: BunFetchRequestInitTLS = {};
  if (options.ca) tls.ca = pem(options.ca);
  if (options.cert) tls.cert = pem(options.cert);
  if (options.key) tls.key = pem(options.key);
  if (options.rejectUnauthorized !== undefined) tls.rejectUnauthorized = options.rejectUnauthorized;
  if (options.servername) tls.serverName = options.servername;
  return { headers, tls };
}

/**
 * `kc` with the files of its current cluster and user (CA, client certificate and key) read as credential files and
 * put in as data: client-node would read each itself at every request, with readFileSync, where a FIFO blocks the
 * event loop for ever. A view on `kc` (its prototype), so that client-node's authenticators and their caches (an
 * exec plugin's credential) are `kc`'s own.
 */
function withFilesRead(kc: KubeConfig): KubeConfig {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster?.caFile && !user?.certFile && !user?.keyFile) return kc;
  const data = (key: string, file: string) => readCredentialFileSync(`its ${key}`, file).toString("base64");
  const view = Object.create(kc) as KubeConfig;
  if (cluster?.caFile) {
    const read = { ...cluster, caFile: undefined, caData: data("certificate-authority", cluster.caFile) };
    view.clusters = kc.clusters.map((entry) => (entry === cluster ? read : entry));
  }
  if (user && (user.certFile || user.keyFile)) {
    const read = {
      ...user,
      ...(user.certFile ? { certFile: undefined, certData: data("client-certificate", user.certFile) } : {}),
      ...(user.keyFile ? { keyFile: undefined, keyData: data("client-key", user.keyFile) } : {}),
    };
    view.users = kc.users.map((entry) => (entry === user ? read : entry));
  }
  return view;
}

function pem(value: unknown): string {
  if (Array.isArray(value)) return value.map(pem).join("\n");
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
