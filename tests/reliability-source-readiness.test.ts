/**
 * /readyz says why the kubernetes source is not synced (no kubeconfig, connection refused, a certificate for another
 * name, a token refused).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { startTestHost, tempDir, type TestHost, waitFor } from "../testing/index.ts";
import { populate } from "../simulator/population.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";

let server: TestApiServer;
let dir: string;
beforeAll(async () => {
  server = await startTestApiServer({ tls: false });
  populate(server, { nodes: 2, podsPerNode: 2 });
  dir = await tempDir("kubemeta-source-readiness-");
});
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs a host whose kubernetes source uses this kubeconfig. */
async function withSource(kubeconfig: string, run: (th: TestHost) => Promise<void>): Promise<void> {
  const th = await startTestHost({
    extra: {
      sources: [{ type: "kubernetes", kubeconfig, resources: ["pods", "nodes"], backoff: { initial: "20ms" } }],
    },
  });
  try {
    await run(th);
  } finally {
    await th.destroy();
  }
}

/**
 * /readyz's body once its status is `status` and its one waiting reason matches `expected`
 * (each resource fails on its own, so the reasons settle into one line only after both did).
 */
async function readyz(th: TestHost, status: number, expected: RegExp) {
  return waitFor(
    async () => {
      const response = await fetch(`${th.url}/readyz`);
      const body = (await response.json()) as { ready: boolean; waiting: string[] };
      const settled = status === 200 ? body.waiting.length === 0 : body.waiting.length === 1;
      return response.status === status && settled && body.waiting.every((w) => expected.test(w)) ? body : undefined;
    },
    4_000,
    `/readyz to answer ${status} with ${expected}`,
  );
}

test("a kubeconfig that cannot be loaded", async () => {
  await withSource(join(dir, "absent.yaml"), async (th) => {
    const body = await readyz(th, 503, /kubeconfig/);
    expect(body.waiting).toEqual([
      expect.stringMatching(/^source kubernetes: cannot load the kubeconfig: .*absent\.yaml/),
    ]);
  });
});

test("an API server whose port is closed", async () => {
  const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const url = closed.url.href.replace(/\/$/, "");
  await closed.stop(true);
  const kubeconfig = join(dir, "closed.yaml");
  await Bun.write(kubeconfig, server.kubeconfig("token").replace(server.url, url));
  await withSource(kubeconfig, async (th) => {
    const body = await readyz(th, 503, /pods, nodes: .*ECONNREFUSED/);
    expect(body.waiting).toEqual([
      expect.stringMatching(/^source kubernetes: pods, nodes: list\/watch failing, retrying: ECONNREFUSED: /),
    ]);
  });
});

test("a certificate that does not name the server (the kubeconfig's tls-server-name): resources together", async () => {
  const tls = await startTestApiServer();
  const kubeconfig = join(dir, "server-name.yaml");
  await Bun.write(
    kubeconfig,
    tls.kubeconfig("token").replace("server: ", "tls-server-name: elsewhere.example.com\n    server: "),
  );
  try {
    await withSource(kubeconfig, async (th) => {
      const body = await readyz(th, 503, /pods, nodes: .*ERR_TLS_CERT_ALTNAME_INVALID/);
      // Bun's message names the whole URL, each resource's own, and a hint for fetch's caller: the origin is kept.
      expect(body.waiting).toEqual([
        "source kubernetes: pods, nodes: list/watch failing, retrying: " +
          `ERR_TLS_CERT_ALTNAME_INVALID fetching ${tls.url}`,
      ]);
    });
  } finally {
    await tls.stop();
  }
});

test("a token the API server refuses, until the right one is in the kubeconfig: then ready", async () => {
  const kubeconfig = join(dir, "token.yaml");
  await Bun.write(kubeconfig, server.kubeconfig("token").replace(server.token, "wrong"));
  await withSource(kubeconfig, async (th) => {
    const body = await readyz(th, 503, /pods, nodes: .*401/);
    expect(body.waiting).toEqual([
      expect.stringMatching(/^source kubernetes: pods, nodes: list\/watch failing, retrying: 401 Unauthorized/),
    ]);
    // After a 401 the source reads its kubeconfig again.
    await Bun.write(kubeconfig, server.kubeconfig("token"));
    expect(await readyz(th, 200, /^$/)).toEqual({ ready: true, waiting: [] });
  });
});
