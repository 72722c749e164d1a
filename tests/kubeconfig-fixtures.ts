/**
 * What the kubeconfig tests share: the test API server (over TLS, its CA and token) and a scratch directory, a
 * kubeconfig's YAML from its parts, and a request made with a loaded kubeconfig.
 */
import { afterAll, beforeAll } from "bun:test";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type KubeconfigOptions, loadKubeConfig } from "../kube/load.ts";
import { createTransport } from "../kube/transport.ts";
import { testPki } from "../simulator/certs.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { tempDir } from "../testing/index.ts";

export interface KubeconfigSuite {
  server: TestApiServer;
  /** A scratch directory for the kubeconfigs, removed after the file's tests. */
  dir: string;
}

/**
 * A TLS front on loopback (the test PKI's server certificate, so the suite's CA verifies it) for the suite's API
 * server, started for the calling test file: `path` says where each request's path and query go upstream, or
 * undefined for a 404 of its own, once it resolves (an answer held back); `seen` holds each request the front was
 * sent, as it came.
 */
export function tlsFront(suite: KubeconfigSuite, path: (url: URL) => string | undefined | Promise<string | undefined>) {
  const front = { url: "", seen: [] as Request[] };
  let server: Bun.Server<undefined> | undefined;
  beforeAll(async () => {
    const pki = await testPki();
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: pki.serverCertPem, key: pki.serverKeyPem },
      async fetch(request) {
        front.seen.push(request);
        const upstream = await path(new URL(request.url));
        if (upstream === undefined) return new Response("404 page not found\n", { status: 404 });
        return fetch(new URL(upstream, suite.server.url), { headers: request.headers, tls: { ca: pki.caPem } });
      },
    });
    front.url = `https://127.0.0.1:${server.port}`;
  });
  afterAll(() => server?.stop(true));
  return front;
}

/** Starts the test API server and a scratch directory for the calling test file (its beforeAll and afterAll). */
export function kubeconfigSuite(): KubeconfigSuite {
  const suite = {} as KubeconfigSuite;
  beforeAll(async () => {
    suite.server = await startTestApiServer();
    suite.dir = await tempDir("kubemeta-kubeconfig-");
  });
  afterAll(async () => {
    await suite.server.stop();
    await rm(suite.dir, { recursive: true, force: true });
  });
  return suite;
}

type Fields = Record<string, unknown>;

/** A kubeconfig's YAML: clusters, users and contexts by name. */
export function kubeconfig(parts: {
  clusters?: Record<string, Fields>;
  users?: Record<string, Fields>;
  contexts?: Record<string, Fields>;
  current?: string;
}): string {
  const named = (key: string, entries: Record<string, Fields> = {}) =>
    Object.entries(entries).map(([name, value]) => ({ name, [key]: value }));
  return Bun.YAML.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: named("cluster", parts.clusters),
      users: named("user", parts.users),
      contexts: named("context", parts.contexts),
      ...(parts.current ? { "current-context": parts.current } : {}),
    },
    null,
    2,
  );
}

/** Base64 of a PEM, as a kubeconfig's `-data` keys hold it. */
export const b64 = (pem: string) => Buffer.from(pem).toString("base64");

/** Writes `<suite.dir>/<name>`: a kubeconfig of one context, the suite's server with `cluster`'s keys, and `user`. */
export async function withCluster(
  suite: KubeconfigSuite,
  name: string,
  cluster: Record<string, string | boolean>,
  user: Fields,
): Promise<string> {
  return write(
    join(suite.dir, name),
    kubeconfig({
      clusters: { c: { server: suite.server.url, ...cluster } },
      users: { u: user },
      contexts: { main: { cluster: "c", user: "u" } },
      current: "main",
    }),
  );
}

/**
 * A kubeconfig in `folder` whose user runs an exec plugin: a script at `script` (under `folder`) that runs `before`,
 * then prints an ExecCredential with the test API server's token (expiring at `expires`); the kubeconfig names it
 * `command`, with `exec`'s keys besides (an `interactiveMode` other than `Never`, an `installHint`, an `apiVersion`,
 * the one the ExecCredential is of too; undefined: left out).
 */
export async function execUserKubeconfig(
  suite: KubeconfigSuite,
  folder: string,
  script: string,
  command: (path: string) => string,
  options: { before?: string; expires?: Date; exec?: Fields; user?: Fields } = {},
): Promise<string> {
  const status = { token: suite.server.token, expirationTimestamp: options.expires?.toISOString() };
  // Of the apiVersion the kubeconfig names, as client-go requires.
  const apiVersion = options.exec?.apiVersion ?? "client.authentication.k8s.io/v1";
  const credential = { apiVersion, kind: "ExecCredential", status };
  const path = await write(
    join(folder, script),
    `#!/bin/sh\n${options.before ?? ""}\necho '${JSON.stringify(credential)}'\n`,
  );
  await chmod(path, 0o755);
  const exec = {
    apiVersion: "client.authentication.k8s.io/v1",
    command: command(path),
    interactiveMode: "Never",
    ...options.exec,
  };
  return write(
    join(folder, "config"),
    kubeconfig({
      clusters: { c: clusterOf(suite.server) },
      users: { u: { exec, ...options.user } },
      contexts: { main: { cluster: "c", user: "u" } },
      current: "main",
    }),
  );
}

/** The test API server as a kubeconfig cluster, its CA inline. */
export const clusterOf = (server: TestApiServer) => ({
  server: server.url,
  "certificate-authority-data": Buffer.from(server.caPem).toString("base64"),
});

export async function write(path: string, text: string): Promise<string> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
  return path;
}

/** Sets these environment variables (undefined: unset); the returned function puts back what was there. */
export function setEnv(env: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  set(env);
  return () => set(saved);
}

/** Runs `fn` with these environment variables (undefined: unset), restored after. */
export function withEnv<T>(env: Record<string, string | undefined>, fn: () => T): T {
  const restore = setEnv(env);
  try {
    return fn();
  } finally {
    restore();
  }
}

/**
 * Loads the kubeconfig and lists namespaces with it: the status the API server answered. `env` is set until the
 * answer is in: Bun's fetch reads the proxy's variables at each request.
 */
export async function status(
  options: KubeconfigOptions,
  env: Record<string, string | undefined> = {},
): Promise<number> {
  const restore = setEnv(env);
  try {
    const { kc } = loadKubeConfig(options);
    const transport = createTransport(kc, () => kc);
    const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
    await response.body?.cancel();
    return response.status;
  } finally {
    restore();
  }
}
