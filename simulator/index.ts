/**
 * A Kubernetes API server for tests, benchmarks and `--demo`: it speaks the wire
 * protocol of kube-apiserver v1.36 (paths, LIST pagination, WATCH streams, bookmarks,
 * streaming lists, Status errors, bearer-token and client-certificate auth over TLS)
 * for the resource types kubemeta watches and for custom resources installed at run time,
 * with its state driven from TypeScript and failures injectable on demand. Leases also take
 * writes over HTTP (POST, PUT, DELETE, as the real registry answers them: writes.ts), for
 * leader election.
 */
import { writeFile } from "node:fs/promises";
import type { KubeObject } from "../sdk/model.ts";
import { testPki } from "./certs.ts";
import type { FaultSpec } from "./faults.ts";
import type { CustomResourceSpec } from "./resources.ts";
import { ApiServerCore } from "./server.ts";

export interface TestApiServerOptions {
  /** Default true: HTTPS with the process-wide test CA. */
  tls?: boolean;
  /** Accepted bearer tokens; default one random token. */
  tokens?: string[];
  /** Default true: a client certificate signed by the CA also authenticates. */
  clientCertAuth?: boolean;
  /** Default false: when true no authentication is needed (demo mode). */
  anonymous?: boolean;
  /** Default 0 (a free port); the host is always 127.0.0.1. */
  port?: number;
  /**
   * Default true: serve `sendInitialEvents=true` watches (KEP-3157). False answers them
   * with the 422 Invalid of a v1.27–v1.31 server whose WatchList gate is off (see options.ts).
   */
  streamingList?: boolean;
  /** Period of BOOKMARK events on watches that allow them; default 1000 ms (a real server: about 1 min). */
  bookmarkIntervalMs?: number;
  /** Events kept to resume watches; a watch from an older resourceVersion gets 410 (default 10000). */
  watchHistory?: number;
  /** Continue tokens expire this long after their first page (default 5 min, etcd's compaction interval). */
  continueTtlMs?: number;
  /** Cap on `limit`. */
  maxPageSize?: number;
  /**
   * Default true, as kube-apiserver (APIResponseCompression): a LIST response past 128 KiB is gzipped for a client
   * whose Accept-Encoding lists gzip. Watches never are.
   */
  compression?: boolean;
}

export type { CustomResourceSpec, FaultSpec };
export { GATEWAY_API } from "./resources.ts";

export interface TestApiServer {
  /** e.g. https://127.0.0.1:43123 */
  url: string;
  caPem: string;
  token: string;
  clientCertPem: string;
  clientKeyPem: string;
  /**
   * A kubeconfig YAML for this server: CA as certificate-authority-data, and a token or client-certificate-data user.
   */
  kubeconfig(auth: "token" | "cert"): string;
  writeKubeconfig(path: string, auth: "token" | "cert"): Promise<void>;
  /** The bearer tokens accepted from now on, in place of those before (a token expired, the next one issued). */
  acceptTokens(tokens: string[]): void;
  /**
   * Serves a custom resource from now on, as installing its CRD does: discovery lists it (its group and version
   * answer 404 before), LIST, WATCH and GET serve it, and create, update, patch and delete take its objects. A watch
   * from a resourceVersion before now gets 410 Gone, as from kube-apiserver's new watch cache for the CRD: after a
   * CRD deleted and created again, none resumes across the two.
   */
  installResource(spec: CustomResourceSpec): void;
  /** Deletes every object of an installed custom resource (DELETED events), ends its watches, stops serving it. */
  uninstallResource(group: string, version: string, resource: string): void;
  /**
   * Assigns uid (unless given), resourceVersion, creationTimestamp, generation; emits ADDED. Throws if it exists.
   * The type is found by kind, and by apiVersion too when the object has one.
   */
  create(obj: KubeObject): KubeObject;
  /** Replaces by kind/namespace/name, keeping uid and creationTimestamp; bumps resourceVersion; emits MODIFIED. */
  update(obj: KubeObject): KubeObject;
  /** `kind` as `Kind`, or `Kind.group` where two groups serve the kind (so for delete, get, list and names too). */
  patch(kind: string, namespace: string | null, name: string, mutate: (o: KubeObject) => void): KubeObject;
  /** Emits DELETED with the final object (stamped with the deletion's resourceVersion). */
  delete(kind: string, namespace: string | null, name: string): KubeObject | undefined;
  get(kind: string, namespace: string | null, name: string): KubeObject | undefined;
  /** Current objects of a kind, in etcd key order (parsed copies: slow for 100,000s). */
  list(kind: string): KubeObject[];
  /** Namespace and name of every current object of a kind, without parsing them. */
  names(kind: string): Array<{ namespace: string | null; name: string }>;
  /** Current global resourceVersion: an integer string, +1 per write. */
  resourceVersion(): string;
  /** Forgets watch history: any watch from an older resourceVersion gets 410. */
  compact(): void;
  expireContinueTokens(): void;
  failNext(fault: FaultSpec): void;
  /** Abruptly closes every open watch connection. */
  dropWatches(): void;
  /** While true, watches (open or new) send nothing at all, not even headers; false sends what was held back. */
  stallWatches(stalled: boolean): void;
  /**
   * Requests by `${verb} ${resource}`: verb list|watch|watchlist (a streaming list)|get (and create|update|delete
   * for Leases), resource like "pods";
   * discovery as `discovery <path>` (a 404 for a group or group version not served too).
   */
  requests(): Record<string, number>;
  resetRequests(): void;
  /** LIST responses sent gzipped since the start. */
  gzippedLists(): number;
  openWatches(): number;
  stop(): Promise<void>;
}

function kubeconfigYaml(server: string, caPem: string | undefined, user: Record<string, string>): string {
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  // client-node refuses a plain-http server unless told to skip TLS verification.
  const cluster = caPem ? `    certificate-authority-data: ${b64(caPem)}\n` : "    insecure-skip-tls-verify: true\n";
  const userLines = Object.entries(user).map(
    ([key, value]) => `    ${key}: ${key.endsWith("-data") ? b64(value) : value}\n`,
  );
  return [
    "apiVersion: v1\nkind: Config\n",
    `clusters:\n- cluster:\n${cluster}    server: ${server}\n  name: kubemeta-test\n`,
    "contexts:\n- context:\n    cluster: kubemeta-test\n    user: kubemeta-test\n  name: kubemeta-test\n",
    "current-context: kubemeta-test\npreferences: {}\n",
    `users:\n- name: kubemeta-test\n  user:${userLines.length ? `\n${userLines.join("")}` : " {}\n"}`,
  ].join("");
}

export async function startTestApiServer(options: TestApiServerOptions = {}): Promise<TestApiServer> {
  const tls = options.tls ?? true;
  const pki = tls ? await testPki() : undefined;
  const tokens = options.tokens ?? [Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url")];
  const accepted = new Set(tokens);
  const core = new ApiServerCore({
    pki,
    tokens: accepted,
    clientCertAuth: tls && (options.clientCertAuth ?? true),
    anonymous: options.anonymous ?? false,
    streamingList: options.streamingList ?? true,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000,
    watchHistory: options.watchHistory ?? 10_000,
    continueTtlMs: options.continueTtlMs ?? 5 * 60_000,
    maxPageSize: options.maxPageSize,
    compression: options.compression ?? true,
  });
  const url = await core.listen(options.port ?? 0);
  const { store, resources } = core;

  const kubeconfig = (auth: "token" | "cert") => {
    if (auth === "cert" && !pki) throw new Error("client-certificate auth needs tls");
    const user: Record<string, string> =
      auth === "token"
        ? { token: tokens[0] ?? "" }
        : { "client-certificate-data": pki!.clientCertPem, "client-key-data": pki!.clientKeyPem };
    return kubeconfigYaml(url, pki?.caPem, user);
  };

  return {
    url,
    caPem: pki?.caPem ?? "",
    token: tokens[0] ?? "",
    clientCertPem: pki?.clientCertPem ?? "",
    clientKeyPem: pki?.clientKeyPem ?? "",
    kubeconfig,
    writeKubeconfig: (path, auth) => writeFile(path, kubeconfig(auth), { mode: 0o600 }),
    acceptTokens(next) {
      accepted.clear();
      for (const token of next) accepted.add(token);
    },
    installResource: (spec) => core.installResource(spec),
    uninstallResource: (group, version, resource) => core.uninstallResource(group, version, resource),
    create: (obj) => store.create(obj),
    update: (obj) => store.update(obj),
    patch(kind, namespace, name, mutate) {
      const type = resources.ofKind(kind);
      const current = store.entry(type, namespace, name);
      if (!current) throw new Error(`${type.resource} "${name}" not found`);
      const object = JSON.parse(current.json) as KubeObject;
      mutate(object);
      return store.update(object);
    },
    delete: (kind, namespace, name) => store.delete(resources.ofKind(kind), namespace, name),
    get(kind, namespace, name) {
      const entry = store.entry(resources.ofKind(kind), namespace, name);
      return entry && (JSON.parse(entry.json) as KubeObject);
    },
    list: (kind) => store.snapshot(resources.ofKind(kind)).entries.map((entry) => JSON.parse(entry.json) as KubeObject),
    names: (kind) => store.snapshot(resources.ofKind(kind)).entries.map(({ namespace, name }) => ({ namespace, name })),
    resourceVersion: () => String(store.resourceVersion()),
    compact: () => store.compact(),
    expireContinueTokens: () => core.expireContinueTokens(),
    failNext: (fault) => core.faults.add(fault),
    dropWatches: () => core.dropWatches(),
    stallWatches: (stalled) => core.stallWatches(stalled),
    requests: () => Object.fromEntries(core.counts),
    resetRequests: () => core.counts.clear(),
    gzippedLists: () => core.gzippedLists,
    openWatches: () => core.openWatches(),
    stop: () => core.close(),
  };
}
