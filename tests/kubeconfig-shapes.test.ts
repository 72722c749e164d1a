/**
 * README's promise that `bun run main.ts` uses a kubeconfig as kubectl does, checked from outside for the shapes users
 * have: kubemeta a process of its own with KUBECONFIG set, against the TLS test API server, ready on /readyz and a pod
 * created after the start reaching an SSE client; credentials rotated while it runs are sent before a 401.
 */
import { expect, test } from "bun:test";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "../testing/index.ts";
import { b64, clusterOf, kubeconfig, kubeconfigSuite, tlsFront, write } from "./kubeconfig-fixtures.ts";
import { seesNewPod, startKubemeta, unauthorizedLines } from "./kubeconfig-process.ts";

const suite = kubeconfigSuite();
const [FIRST, NEXT] = ["first-token-0123456789abcdef", "next-token-0123456789abcdefgh"];
const PREFIX = "/k8s/clusters/c-1";
const rancher = tlsFront(suite, ({ pathname, search }) =>
  pathname.startsWith(`${PREFIX}/`) ? `${pathname.slice(PREFIX.length)}${search}` : undefined,
);

/** A kubeconfig of one context, `main`, of `cluster` and `user`. */
const single = (cluster: Record<string, unknown>, user: Record<string, unknown>) =>
  kubeconfig({
    clusters: { c: cluster },
    users: { u: user },
    contexts: { main: { cluster: "c", user: "u" } },
    current: "main",
  });

/**
 * kubemeta run with `KUBECONFIG`: ready, then `rotate` (the server accepting only what it returns, its watches
 * dropped), then a pod created in `namespace` seen over SSE, with no request refused.
 */
async function watchesWith(name: string, kubeconfigs: string, rotate?: () => Promise<string>, namespace = "default") {
  const run = await startKubemeta(join(suite.dir, "runs", name), { KUBECONFIG: kubeconfigs });
  try {
    await waitFor(async () => (await fetch(`${run.url}/readyz`)).ok, 15_000, "kubemeta to be ready");
    if (rotate) {
      suite.server.acceptTokens([await rotate()]);
      suite.server.dropWatches();
    }
    expect(await seesNewPod(suite.server, run.url, `pod-${name}`, namespace)).toBe(true);
    expect(unauthorizedLines(run.stdout)).toEqual([]);
  } finally {
    await run.stop();
    suite.server.acceptTokens([suite.server.token]);
  }
}

test("two files: the first's current-context and definitions win; every namespace, not the context's", async () => {
  const dir = join(suite.dir, "merged");
  const first = await write(
    join(dir, "a.yaml"),
    kubeconfig({
      clusters: { c: clusterOf(suite.server) },
      users: { u: { token: suite.server.token } },
      contexts: { main: { cluster: "c", user: "u", namespace: "team-a" } },
      current: "main",
    }),
  );
  const second = await write(
    join(dir, "b.yaml"),
    kubeconfig({
      clusters: { c: { server: "https://127.0.0.1:1", "certificate-authority-data": b64(suite.server.caPem) } },
      users: { u: { token: "not-the-token" } },
      contexts: { other: { cluster: "c", user: "u" } },
      current: "other",
    }),
  );
  await watchesWith("merged", `${first}:${second}`, undefined, "team-b");
});

test("a certificate-authority and a tokenFile relative to the kubeconfig, the token rotated", async () => {
  const dir = join(suite.dir, "relative");
  await write(join(dir, "pki", "ca.pem"), suite.server.caPem);
  const token = await write(join(dir, "secrets", "token"), `${FIRST}\n`);
  const file = await write(
    join(dir, "config"),
    single({ server: suite.server.url, "certificate-authority": "pki/ca.pem" }, { tokenFile: "secrets/token" }),
  );
  suite.server.acceptTokens([FIRST]);
  await watchesWith("relative", file, async () => {
    await writeFile(token, NEXT);
    return NEXT;
  });
});

test("an exec plugin (a command relative to the kubeconfig): run again once its credential has expired", async () => {
  const dir = join(suite.dir, "exec");
  const current = await write(join(dir, "current"), FIRST);
  const runs = join(dir, "runs");
  const expiresAt = join(dir, "expires-at");
  const status = `"status":{"token":"'"$(cat ${current})"'","expirationTimestamp":"'"$expires"'"}`;
  const plugin = await write(
    join(dir, "bin", "plugin"),
    [
      "#!/bin/sh",
      `echo run >> ${runs}`,
      `expires=$(date -u -d '+1 second' +%Y-%m-%dT%H:%M:%SZ); echo "$expires" > ${expiresAt}`,
      `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",${status}}'`,
      "",
    ].join("\n"),
  );
  await chmod(plugin, 0o755);
  const exec = { apiVersion: "client.authentication.k8s.io/v1", command: "./bin/plugin", interactiveMode: "Never" };
  suite.server.acceptTokens([FIRST]);
  await watchesWith("exec", await write(join(dir, "config"), single(clusterOf(suite.server), { exec })), async () => {
    await writeFile(current, NEXT);
    const expiry = Date.parse((await readFile(expiresAt, "utf8")).trim());
    await waitFor(() => Date.now() > expiry, 5000, "the credential to expire");
    return NEXT;
  });
  expect((await readFile(runs, "utf8")).trim().split("\n").length).toBeGreaterThanOrEqual(2);
});

test("a server URL under a path prefix (Rancher's): lists and watches go under it", async () => {
  const file = await write(
    join(suite.dir, "prefix", "config"),
    single(
      { server: `${rancher.url}${PREFIX}`, "certificate-authority-data": b64(suite.server.caPem) },
      { token: suite.server.token },
    ),
  );
  await watchesWith("prefix", file);
  const watches = rancher.seen.filter((request) => new URL(request.url).searchParams.get("watch") === "1");
  expect(watches.map((request) => new URL(request.url).pathname)).toContain(`${PREFIX}/api/v1/pods`);
});

test("a file that defines a user twice: not loaded, as kubectl refuses it, saying so in /readyz", async () => {
  // As a hand-edited file ends up: the user's old token left above the new one.
  const file = await write(
    join(suite.dir, "twice", "config"),
    Bun.YAML.stringify({
      clusters: [{ name: "c", cluster: clusterOf(suite.server) }],
      users: [
        { name: "u", user: { token: "revoked-token-0123456789abcdef" } },
        { name: "u", user: { token: suite.server.token } },
      ],
      contexts: [{ name: "main", context: { cluster: "c", user: "u" } }],
      "current-context": "main",
    }),
  );
  const run = await startKubemeta(join(suite.dir, "runs", "twice"), { KUBECONFIG: file });
  try {
    const said = `cannot load kubeconfig ${file}: it defines user "u" twice (kubectl refuses it too)`;
    // Was: the first definition sent, every request refused with a 401, nothing said of the second.
    const waiting = async () => ((await (await fetch(`${run.url}/readyz`)).json()) as { waiting: string[] }).waiting;
    await waitFor(async () => (await waiting()).some((reason) => reason.includes(said)), 15_000, said);
  } finally {
    await run.stop();
  }
});
