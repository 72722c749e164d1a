/**
 * In a pod, from outside: `bun run main.ts` with no config and no kubeconfig, as the manifests run it, finds the
 * cluster by `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's files, here mounted on /run in a mount
 * namespace of its own (root alone may make one: the tests skip otherwise), against the TLS test API server.
 */
import { expect, test } from "bun:test";
import { rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "../testing/index.ts";
import { kubeconfigSuite, write } from "./kubeconfig-fixtures.ts";
import { seesNewPod, startKubemeta, unauthorizedLines } from "./kubeconfig-process.ts";

const suite = kubeconfigSuite();
const [FIRST, NEXT] = ["first-token-0123456789abcdef", "next-token-0123456789abcdefgh"];
const IN_NAMESPACE = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /run && exec "$@"'];
const canMount = process.getuid?.() === 0 && Bun.which("unshare") !== null;

/**
 * The service account's folder under `<root>/secrets` as the kubelet lays out a projected volume: each key a link
 * through `..data` to the folder of its current version, swapped whole at a rotation; `ca.crt` among them unless
 * `withCa` is false. Returns the rotation.
 */
async function serviceAccount(root: string, token: string, withCa = true) {
  const account = join(root, "secrets", "kubernetes.io", "serviceaccount");
  const keys = withCa ? ["token", "ca.crt", "namespace"] : ["token", "namespace"];
  const version = async (name: string, value: string) => {
    await write(join(account, name, "token"), value);
    if (withCa) await write(join(account, name, "ca.crt"), suite.server.caPem);
    await write(join(account, name, "namespace"), "kubemeta");
  };
  await version("..2026_12_07_10_00_00.1", token);
  await symlink("..2026_12_07_10_00_00.1", join(account, "..data"));
  for (const key of keys) await symlink(`..data/${key}`, join(account, key));
  return async (next: string) => {
    await version("..2026_12_07_10_48_00.2", next);
    await symlink("..2026_12_07_10_48_00.2", join(account, "..data_tmp"));
    await rename(join(account, "..data_tmp"), join(account, "..data"));
    await rm(join(account, "..2026_12_07_10_00_00.1"), { recursive: true });
  };
}

/** kubemeta started in a pod's environment (`env` besides) whose service account's folder is under `root`. */
const kubemetaInPod = (name: string, root: string, env: Record<string, string>) =>
  startKubemeta(join(suite.dir, "runs", name), env, [...IN_NAMESPACE, root]);

test.skipIf(!canMount)("the token the kubelet rotates is sent at once, without a 401; every namespace", async () => {
  suite.server.acceptTokens([FIRST]);
  const root = join(suite.dir, "rotated");
  const rotate = await serviceAccount(root, FIRST);
  const { hostname, port } = new URL(suite.server.url);
  const pod = await kubemetaInPod("rotated", root, {
    KUBERNETES_SERVICE_HOST: hostname,
    KUBERNETES_SERVICE_PORT: port,
  });
  try {
    await waitFor(async () => (await fetch(`${pod.url}/readyz`)).ok, 15_000, "kubemeta to be ready");
    expect(pod.stdout.lines("kubernetes source starting")[0]).toMatchObject({
      kubeconfig: "in-cluster service account",
      server: suite.server.url,
    });
    await rotate(NEXT);
    suite.server.acceptTokens([NEXT]);
    suite.server.dropWatches();
    // Not the service account's namespace alone: kubemeta watches the cluster.
    expect(await seesNewPod(suite.server, pod.url, "after-rotation", "elsewhere")).toBe(true);
    expect(unauthorizedLines(pod.stdout)).toEqual([]);
  } finally {
    await pod.stop();
    suite.server.acceptTokens([suite.server.token]);
  }
});

test.skipIf(!canMount)(
  "on port 8080 (or 80, 8001) too, the API server is reached over https://, as by kubectl",
  async () => {
    const root = join(suite.dir, "http-port");
    await serviceAccount(root, FIRST);
    const pod = await kubemetaInPod("http-port", root, {
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "8080",
    });
    try {
      const starting = await pod.stdout.waitFor(/^\{.*"msg":"kubernetes source starting".*$/m, 15_000);
      // Was http://10.96.0.1:8080: the token sent in clear (and warned of), to a server that speaks TLS alone.
      expect(JSON.parse(starting[0]).server).toBe("https://10.96.0.1:8080");
      expect(pod.stdout.text).not.toContain("unencrypted");
    } finally {
      await pod.stop();
    }
  },
);

const NO_CA =
  "in-cluster service account: cannot read its certificate-authority " +
  "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt: ENOENT; the API server's certificate is checked against " +
  "the system's CAs instead, as kubectl does";

test.skipIf(!canMount)("without ca.crt, a warning, and the server checked against the system's CAs", async () => {
  const root = join(suite.dir, "no-ca");
  await serviceAccount(root, suite.server.token, false);
  const { hostname, port } = new URL(suite.server.url);
  const env = { KUBERNETES_SERVICE_HOST: hostname, KUBERNETES_SERVICE_PORT: port };
  // The test CA among the system's, as a public CA's would be (Bun reads NODE_EXTRA_CA_CERTS as Node does).
  const systemCa = await write(join(suite.dir, "system-ca.pem"), suite.server.caPem);
  const pod = await kubemetaInPod("no-ca", root, { ...env, NODE_EXTRA_CA_CERTS: systemCa });
  try {
    // Was: never ready, every start refused: `cannot read its certificate-authority …/ca.crt: ENOENT`.
    await waitFor(async () => (await fetch(`${pod.url}/readyz`)).ok, 15_000, "kubemeta to be ready");
    expect(pod.stdout.lines(NO_CA)).toHaveLength(1);
    expect(await seesNewPod(suite.server, pod.url, "without-ca", "default")).toBe(true);
  } finally {
    await pod.stop();
  }
  // Not among the system's: still checked, and refused.
  const unknown = await kubemetaInPod("no-ca-unknown", root, env);
  try {
    await unknown.stdout.waitFor(/"msg":"list\/watch failed; retrying".*certificate/, 15_000);
    expect((await fetch(`${unknown.url}/readyz`)).status).toBe(503);
  } finally {
    await unknown.stop();
  }
});

/** The kubernetes source created and started `times` over in one process, as each `ha` term does: its log lines. */
const SOURCE_TERMS = (times: number) => `
import { createLogger } from ${JSON.stringify(join(import.meta.dir, "..", "host", "logger.ts"))};
import { RecordingSink, runSource } from ${JSON.stringify(join(import.meta.dir, "source-kubernetes-recorder.ts"))};
const logger = createLogger({ level: "warn" });
for (let term = 0; term < ${times}; term++) {
  const running = await runSource(new RecordingSink(), { resources: ["pods"] }, logger);
  await running.synced;
  await running.stop();
}
console.log("terms done");
`;

test.skipIf(!canMount)(
  "without ca.crt, its warning said once by a process whose source starts twice",
  async () => {
    const root = join(suite.dir, "no-ca-twice");
    await serviceAccount(root, suite.server.token, false);
    const { hostname, port } = new URL(suite.server.url);
    const script = await write(join(suite.dir, "source-terms.ts"), SOURCE_TERMS(2));
    const systemCa = await write(join(suite.dir, "system-ca-twice.pem"), suite.server.caPem);
    const env = { KUBERNETES_SERVICE_HOST: hostname, KUBERNETES_SERVICE_PORT: port, NODE_EXTRA_CA_CERTS: systemCa };
    const child = Bun.spawn([...IN_NAMESPACE, root, process.execPath, script], {
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, exit] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect({ exit, done: out.includes("terms done") }).toEqual({ exit: 0, done: true });
    // Was one line at each start: each supervised restart of the source, each ha term.
    expect(out.split("\n").filter((line) => line.includes(NO_CA))).toHaveLength(1);
  },
  30_000,
);
