/**
 * A token file read again once it has changed, as client-go's cached file token source reads it again: the token the
 * kubelet rotates (a service account's, bound, expiring) or a kubeconfig's `tokenFile` is sent from the next request
 * on, before the token it replaced is refused, rather than after a 401. Each with a transport's requests over TLS on
 * loopback to the test API server, which accepts only the new token once the file has it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { createTransport } from "../kube/transport.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { tempDir } from "../testing/index.ts";
import { clusterOf, kubeconfig, write, withEnv } from "./kubeconfig-fixtures.ts";

const [FIRST, NEXT] = ["first-token-0123456789abcdef", "next-token-0123456789abcdefgh"];
let server: TestApiServer;
let dir: string;
beforeAll(async () => {
  server = await startTestApiServer();
  dir = await tempDir("kubemeta-token-file-");
});
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Two requests with the kubeconfig `load` gives, `rotate` run between them: each one's status. */
async function aroundRotation(load: () => ReturnType<typeof loadKubeConfig>, rotate: () => Promise<void>) {
  server.acceptTokens([FIRST]);
  const { kc } = load();
  const transport = createTransport(kc, () => load().kc);
  const status = async () => {
    const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
    await response.body?.cancel();
    return response.status;
  };
  try {
    const before = await status();
    await rotate();
    server.acceptTokens([NEXT]);
    return [before, await status()];
  } finally {
    transport.close();
  }
}

test("a kubeconfig's tokenFile rewritten: the next request sends its new token", async () => {
  const folder = join(dir, "kubeconfig");
  const tokenFile = await write(join(folder, "token"), `${FIRST}\n`);
  const file = await write(
    join(folder, "config"),
    kubeconfig({
      clusters: { c: clusterOf(server) },
      users: { u: { tokenFile } },
      contexts: { main: { cluster: "c", user: "u" } },
      current: "main",
    }),
  );
  // Was: 401, the token read at load sent until a 401 reloaded the kubeconfig.
  expect(
    await aroundRotation(
      () => loadKubeConfig({ kubeconfig: file }),
      () => writeFile(tokenFile, NEXT),
    ),
  ).toEqual([200, 200]);
});

test("in a cluster, the service account's token rotated by the kubelet (..data swapped): sent at once", async () => {
  const root = join(dir, "in-cluster");
  const account = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
  // As the kubelet lays out a projected volume: each key a link through `..data` to the current timestamped folder.
  await write(join(account, "..2026_12_07_10_00_00.1", "token"), FIRST);
  await symlink("..2026_12_07_10_00_00.1", join(account, "..data"));
  await symlink("..data/token", join(account, "token"));
  await writeFile(join(account, "ca.crt"), server.caPem);
  const { hostname, port } = new URL(server.url);
  const env = { KUBERNETES_SERVICE_HOST: hostname, KUBERNETES_SERVICE_PORT: port, KUBECONFIG: undefined };
  const load = () => withEnv(env, () => loadKubeConfig({}, root));
  expect(load().origin).toBe("in-cluster service account");
  const rotate = async () => {
    await write(join(account, "..2026_12_07_10_48_00.2", "token"), NEXT);
    await symlink("..2026_12_07_10_48_00.2", join(account, "..data_tmp"));
    await rename(join(account, "..data_tmp"), join(account, "..data"));
    await rm(join(account, "..2026_12_07_10_00_00.1"), { recursive: true });
  };
  // Was: 401, client-node's reader keeping what it read for a minute.
  expect(await aroundRotation(load, rotate)).toEqual([200, 200]);
});
