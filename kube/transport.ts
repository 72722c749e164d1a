/**
 * kubeconfig → requests, for the source's lists and watches and for the leader election's
 * Lease writes. The kubeconfig is found and checked by load.ts; client-node computes
 * credentials (tokens, client certificates, exec plugins, in-cluster service account); the
 * requests go out through Bun's own fetch with the TLS settings passed explicitly, because
 * client-node's fetch path puts them on an undici Agent that Bun ignores (DESIGN.md,
 * "Pitfalls": LIST fails with UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
import type { ChildProcess } from "node:child_process";
import type { RequestOptions } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { redactServer } from "../protocol/subjects.ts";
import { isLoopback } from "../protocol/clear-text.ts";
import { addImpersonation } from "./impersonation.ts";
import { endExecRuns, ExecCredentialError, forgetExecCredential, lastExecExit, trackExecRuns } from "./exec-runs.ts";
import { withFilesRead } from "./tls-files.ts";
import { withTokenRead } from "./token-file.ts";

/** What a write sends: a JSON body (serialized here) for POST, PUT and PATCH. */
export interface KubeRequestInit {
  body?: unknown;
  /** Default `application/json`; a PATCH names its kind (e.g. `application/merge-patch+json`). */
  contentType?: string;
  signal: AbortSignal;
}

export type KubeMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface KubeTransport {
  /** The API server's base URL as a log line may show it: credentials in it hidden (`https://user:***@host`). */
  readonly server: string;
  /** Sends a GET for `pathAndQuery` (e.g. `/api/v1/pods?limit=500`) with the current credentials. */
  get(pathAndQuery: string, signal: AbortSignal): Promise<Response>;
  /** Sends any request with the current credentials; the response is the caller's, whatever its status. */
  request(method: KubeMethod, pathAndQuery: string, init: KubeRequestInit): Promise<Response>;
  /**
   * Reloads the kubeconfig and forgets cached credentials: after a 401 (`refused`), when a token file was rotated, a
   * client certificate renewed or an exec credential revoked. An exec credential only if `refused` carried it.
   */
  reloadCredentials(refused?: Response): void;
  /**
   * Kills the exec plugin's run in flight, if any and unless another transport waits for it too (the Lease's, another
   * source's): its user stops (a request after this runs the plugin anew, or joins the run left to the others).
   */
  close(): void;
}

/** No credentials to send (an exec plugin that failed, a token file gone): the request never left. */
export class CredentialsError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "CredentialsError";
  }
}

/**
 * A request that got no answer, as the request metrics' `code` says it (the source's and the Lease's alike):
 * `credentials` when it never left for want of them, an alert on failed requests seeing it all the same; else `error`.
 */
export const unansweredCode = (err: unknown): "credentials" | "error" =>
  err instanceof CredentialsError ? "credentials" : "error";

/** `reload` loads the kubeconfig again, the way `initial` was loaded. */
export function createTransport(initial: KubeConfig, reload: () => KubeConfig): KubeTransport {
  /**
   * The exec plugin's runs in flight this transport waits for, its own or another's it joined: one at most, as
   * client-go's lock has it (see reloadCredentials).
   */
  const runs = new Set<ChildProcess>();
  trackExecRuns(initial, runs);
  let kc = initial;
  let server = baseUrl(kc.getCurrentCluster()!.server);
  /**
   * The credentials being worked out, shared by the requests that ask meanwhile: at start every resource asks at
   * once, and client-node, whose cache is empty then, would run an exec plugin (a cloud CLI, an IAM call) for each.
   */
  let working: ReturnType<typeof fetchOptions> | undefined;
  /** What each answer's request carried, told of with a 401 (reloadCredentials). */
  const sent = new WeakMap<Response, Awaited<ReturnType<typeof fetchOptions>>>();
  async function request(method: KubeMethod, pathAndQuery: string, init: KubeRequestInit): Promise<Response> {
    const cluster = kc.getCurrentCluster()!;
    if (!working) {
      const run = fetchOptions(kc)
        .catch((error: unknown) => {
          if (error instanceof UnusableCredentialError) forgetCredential();
          throw error;
        })
        .finally(() => {
          if (working === run) working = undefined;
        });
      working = run;
    }
    const options = await untilGivenUp(working, init.signal, kc).catch((error: unknown) => {
      throw new CredentialsError(error);
    });
    // Each request its own headers: a content type is set on them below.
    const [headers, tls] = [new Headers(options.headers), options.tls];
    const hasBody = init.body !== undefined;
    if (hasBody) headers.set("Content-Type", init.contentType ?? "application/json");
    const response = await fetch(`${server}${pathAndQuery}`, {
      method,
      headers,
      tls,
      // The API server never redirects a client: an answer from wherever a 3xx points (an empty list, say) would be
      // taken for the cluster's. A 3xx is a failed request, retried like any other.
      redirect: "manual",
      signal: init.signal,
      ...(hasBody ? { body: JSON.stringify(init.body) } : {}),
      proxy: proxyFor(server, cluster.proxyUrl),
    });
    sent.set(response, options);
    return response;
  }
  function reloadCredentials(refused?: Response) {
    const carried = refused && sent.get(refused);
    const what = carried && { authorization: carried.headers.get("Authorization"), cert: carried.tls.cert };
    forgetExecCredential(kc, what);
    const reloaded = reload();
    forgetExecCredential(reloaded, what);
    trackExecRuns(reloaded, runs);
    kc = reloaded;
    server = baseUrl(kc.getCurrentCluster()!.server);
    // A plugin still running is waited for, not run again beside it: each request refused meanwhile (every resource's
    // at once, a token revoked) reloads, and each reload would start one more run of a plugin that hangs. The next
    // run, from the kubeconfig reloaded, starts once it is over.
    if (runs.size === 0) working = undefined;
  }
  /**
   * client-node keeps what an exec plugin printed before it reads it: an ExecCredential without a `status` (or with
   * nothing in it) stays in its cache, and every request after it would fail on it without running the plugin again,
   * nor reach the API server for the 401 that reloads. A kubeconfig loaded afresh starts with an empty cache, as after
   * a 401.
   */
  function forgetCredential() {
    try {
      reloadCredentials();
    } catch {
      // The kubeconfig cannot be read right now: the next request fails on that, and tries again.
    }
  }
  return {
    get server() {
      return redactServer(server);
    },
    get: (pathAndQuery, signal) => request("GET", pathAndQuery, { signal }),
    request,
    reloadCredentials,
    close() {
      endExecRuns(runs);
      working = undefined;
    },
  };
}

/**
 * The server's URL as the base of each request's path, joined to it as client-go joins them (as paths, `path.Join`):
 * a `server` with a trailing slash (`https://host:6443/`, Rancher's `…/k8s/clusters/c-1/`) would otherwise send
 * `//api/v1/…`, which kube-apiserver answers 404 to.
 */
function baseUrl(server: string): string {
  if (!URL.canParse(server)) return server;
  const url = new URL(server);
  url.pathname = url.pathname.replace(/\/{2,}/g, "/");
  return url.href.replace(/\/$/, "");
}

/**
 * The proxy of a request to `server`, as client-go picks it: the kubeconfig's `proxy-url` for every request, whatever
 * `NO_PROXY` lists (Bun's fetch would let it bypass the proxy); else none for a server on a loopback address or
 * `localhost`, which Go's `HTTPS_PROXY` handling never proxies and Bun's fetch does (a kind cluster or `kubectl proxy`
 * on a machine behind a corporate proxy); else the environment's (`HTTPS_PROXY`, `NO_PROXY`), which Bun's fetch reads.
 */
function proxyFor(server: string, proxyUrl: string | undefined): Bun.FetchProxyOption | undefined {
  if (proxyUrl) return { url: proxyUrl, respectNoProxy: false };
  return URL.canParse(server) && isLoopback(new URL(server).hostname) ? false : undefined;
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

/**
 * Why the plugin could not be started, if it could not: as kubectl says a plugin is not installed, with the hint the
 * kubeconfig gives for it (its `installHint`, on one line, as a log line and /readyz hold it), where client-node
 * would say Bun's `Executable not found in $PATH` or `ENOENT: no such file or directory, posix_spawn`, no hint.
 */
function spawnFailure(err: unknown, command: string, kc: KubeConfig): string | undefined {
  const { code, syscall } = err as NodeJS.ErrnoException;
  if (!syscall?.startsWith("spawn")) return undefined;
  if (code === "EACCES") return "cannot be run: it is not an executable file (EACCES)";
  if (code !== "ENOENT") return undefined;
  const hint = (kc.getCurrentUser()?.exec as { installHint?: unknown } | undefined)?.installHint;
  const notFound = `is not installed (${command.includes("/") ? "no such file" : "not found in PATH"})`;
  return typeof hint === "string" && hint.trim() ? `${notFound}: ${hint.trim().replace(/\s+/g, " ")}` : notFound;
}

/** An exec plugin's output that is JSON but no usable ExecCredential: client-node has cached it (forgetCredential). */
class UnusableCredentialError extends Error {}

/** Of a plugin's stderr, what a reason in /readyz and a log line hold (as of an API server's error body). */
const MAX_PLUGIN_STDERR = 500;

/**
 * What client-node's exec authenticator rejects with, said as the plugin's failure: its stderr alone (or nothing at
 * all, for a plugin that exits non-zero and says nothing), and the JSON parser's error on its output, which quotes the
 * output: a plugin that prints its token bare would put the token in the log and /readyz.
 */
function execFailure(command: string, err: unknown, kc: KubeConfig): Error {
  const plugin = `the kubeconfig's exec plugin ${command}`;
  const notRun = spawnFailure(err, command, kc);
  if (notRun) return new Error(`${plugin} ${notRun}`);
  if (err instanceof SyntaxError) return new Error(`${plugin} printed no ExecCredential: its output is not JSON`);
  if (err instanceof ExecCredentialError) return new Error(`${plugin} ${err.message}`);
  // client-node reads `status` of the output without looking whether it has one (client-go: "exec plugin didn't
  // return a status field").
  if (err instanceof TypeError)
    return new UnusableCredentialError(`${plugin} printed no ExecCredential: its output has no status`);
  const said = err instanceof Error ? err.message.trim() : String(err);
  if (!said) return new Error(`${plugin} ${lastExecExit(kc) || "failed"}, and wrote nothing on stderr`);
  return new Error(`${plugin} failed: ${said.slice(0, MAX_PLUGIN_STDERR)}`);
}

/**
 * Headers and TLS settings for one request. `applyToHTTPSOptions` is client-node's
 * public way to get everything a request needs; it runs the authenticators on every
 * call, so exec credentials are renewed when they expire; a token file changed since
 * it was read is read again first (token-file.ts).
 */
export async function fetchOptions(kc: KubeConfig): Promise<{ headers: Headers; tls: BunFetchRequestInitTLS }> {
  const options: RequestOptions = {};
  const read = withTokenRead(kc);
  const withFiles = withFilesRead(read instanceof Promise ? await read : read);
  try {
    await withFiles.applyToHTTPSOptions(options);
  } catch (err) {
    // For a plain http:// server (kubectl proxy, --demo) without insecure-skip-tls-verify,
    // client-node refuses to build its https.Agent, the last step, once the options are
    // complete. The agent is not used here, and kubectl speaks plain HTTP too.
    if (!(kc.getCurrentCluster()?.server.startsWith("http:") && /HTTP protocol is not allowed/.test(String(err)))) {
      // With the files read, what fails in between is the authenticator, for a user with exec: the plugin's run.
      const command = execCommand(kc);
      throw command ? execFailure(command, err, kc) : err;
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
  addImpersonation(kc, headers);
  const plugin = execCommand(kc);
  // client-node sends such a request without credentials, and the API server's 401 would be all that is said
  // (client-go: "exec plugin didn't return a token or cert/key pair").
  if (plugin && !headers.has("Authorization") && !options.cert)
    throw new UnusableCredentialError(
      `the kubeconfig's exec plugin ${plugin} printed an ExecCredential with neither a token nor a client certificate`,
    );
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
