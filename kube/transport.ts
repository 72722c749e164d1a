/**
 * kubeconfig → requests, for the source's lists and watches and for the leader election's
 * Lease writes. client-node loads the kubeconfig and computes credentials
 * (tokens, token files, client certificates, exec plugins, in-cluster service
 * account); the requests go out through Bun's own fetch with the TLS settings passed
 * explicitly, because client-node's fetch path puts them on an undici Agent that Bun
 * ignores (DESIGN.md, "Pitfalls": LIST fails with UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join, resolve as resolvePath } from "node:path";
import type { RequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeconfigOptions {
  /** A kubeconfig file; without it, Kubernetes' own resolution. */
  kubeconfig?: string;
  /** A context of the kubeconfig other than its current one. */
  context?: string;
}

/**
 * Loads the kubeconfig: the given file; else the in-cluster service account; else
 * `KUBECONFIG` (a list of files, merged); else `~/.kube/config`. Errors say which
 * file and what is wrong. `inClusterRoot` prefixes the service-account directory
 * (client-node's `loadFromCluster(pathPrefix)`), for tests.
 */
export function loadKubeConfig(options: KubeconfigOptions, inClusterRoot = ""): { kc: KubeConfig; origin: string } {
  const kc = new KubeConfig();
  const { origin, files } = resolve(kc, options, inClusterRoot);
  if (options.context) {
    if (!kc.getContextObject(options.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(
        `kubeconfig ${origin} has no context "${options.context}" (contexts: ${known.join(", ") || "none"})`,
      );
    }
    kc.setCurrentContext(options.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new Error(`kubeconfig ${origin}: current context "${kc.getCurrentContext() ?? ""}" names no cluster`);
  if (cluster.proxyUrl?.startsWith("socks"))
    throw new Error(`kubeconfig ${origin}: SOCKS proxy-url is not supported (Bun's fetch speaks HTTP proxies only)`);
  try {
    readTokenFile(kc, files);
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${origin}: ${(err as Error).message}`);
  }
  return { kc, origin };
}

/** Loads the kubeconfig into `kc`: where from, and the files it was read from (none in a cluster). */
function resolve(
  kc: KubeConfig,
  options: KubeconfigOptions,
  inClusterRoot: string,
): { origin: string; files: string[] } {
  const env = process.env;
  // $HOME first, as kubectl and client-node do (Bun's homedir() ignores a changed $HOME).
  const home = env.HOME || homedir();
  if (options.kubeconfig) {
    const file = options.kubeconfig.startsWith("~/") ? join(home, options.kubeconfig.slice(2)) : options.kubeconfig;
    return loadFile(kc, file, [file], () => kc.loadFromFile(file));
  }
  if (
    env.KUBERNETES_SERVICE_HOST &&
    env.KUBERNETES_SERVICE_PORT &&
    existsSync(`${inClusterRoot}${SERVICE_ACCOUNT_DIR}/token`)
  ) {
    kc.loadFromCluster(inClusterRoot);
    return { origin: "in-cluster service account", files: [] };
  }
  const listed = env.KUBECONFIG?.split(delimiter).filter(Boolean) ?? [];
  if (listed.length > 0) return loadFile(kc, `KUBECONFIG=${env.KUBECONFIG}`, listed, () => kc.loadFromDefault());
  const file = join(home, ".kube", "config");
  if (!existsSync(file)) {
    throw new Error(`no kubeconfig found: not running in a cluster, KUBECONFIG is not set and ${file} does not exist`);
  }
  return loadFile(kc, file, [file], () => kc.loadFromFile(file));
}

function loadFile(kc: KubeConfig, origin: string, files: string[], load: () => void) {
  try {
    load();
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${origin}: ${(err as Error).message}`);
  }
  if (kc.getContexts().length === 0) throw new Error(`kubeconfig ${origin} defines no context`);
  return { origin, files };
}

/**
 * The current user's `tokenFile` (kubectl's key for it, client-go's) is read here: client-node reads only
 * `token-file`, and a user with `tokenFile` would send no credentials at all. Only the user the context names, as
 * client-go reads it (other users may name files long gone), from the first file that defines it (the one whose
 * definition a merge keeps), relative to that file and trimmed; read again with the rest on every reload, so a
 * rotated token is picked up.
 */
function readTokenFile(kc: KubeConfig, files: string[]): void {
  const current = kc.getCurrentUser();
  if (!current || current.token) return;
  type RawUsers = { users?: { name?: unknown; user?: { tokenFile?: unknown } }[] } | null;
  for (const file of files) {
    const raw = Bun.YAML.parse(readFileSync(file, "utf8")) as RawUsers;
    const entry = (Array.isArray(raw?.users) ? raw.users : []).find((candidate) => candidate?.name === current.name);
    if (!entry) continue;
    const tokenFile = entry.user?.tokenFile;
    if (typeof tokenFile !== "string") return;
    const token = readFileSync(resolvePath(dirname(file), tokenFile), "utf8").trim();
    kc.users[kc.users.findIndex((user) => user.name === current.name)] = { ...current, token };
    return;
  }
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
  async function request(method: KubeMethod, pathAndQuery: string, init: KubeRequestInit): Promise<Response> {
    const cluster = kc.getCurrentCluster()!;
    const { headers, tls } = await fetchOptions(kc).catch((error: unknown) => {
      throw new CredentialsError(error);
    });
    const hasBody = init.body !== undefined;
    if (hasBody) headers.set("Content-Type", init.contentType ?? "application/json");
    return fetch(`${server}${pathAndQuery}`, {
      method,
      headers,
      tls,
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
    },
  };
}

/**
 * Headers and TLS settings for one request. `applyToHTTPSOptions` is client-node's
 * public way to get everything a request needs; it runs the authenticators on every
 * call, so exec credentials are renewed when they expire and the in-cluster token
 * file is re-read (client-node re-reads it every 60 s).
 */
export async function fetchOptions(kc: KubeConfig): Promise<{ headers: Headers; tls: BunFetchRequestInitTLS }> {
  const options: RequestOptions = {};
  try {
    await kc.applyToHTTPSOptions(options);
  } catch (err) {
    // For a plain http:// server (kubectl proxy, --demo) without insecure-skip-tls-verify,
    // client-node refuses to build its https.Agent, the last step, once the options are
    // complete. The agent is not used here, and kubectl speaks plain HTTP too.
    if (!(kc.getCurrentCluster()?.server.startsWith("http:") && /HTTP protocol is not allowed/.test(String(err))))
      throw err;
  }
  const headers = new Headers({ Accept: "application/json", "User-Agent": "kubemeta" });
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

function pem(value: unknown): string {
  if (Array.isArray(value)) return value.map(pem).join("\n");
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
