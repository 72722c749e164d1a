/** Authentication, injected failures, request accounting, and @kubernetes/client-node against the test API server. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CoreV1Api, KubeConfig, makeInformer, type V1Pod } from "@kubernetes/client-node";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { testPki } from "../simulator/certs.ts";
import { apiFetch, testPod, waitFor, WatchReader } from "./apiserver-client.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";

/** A client certificate the server's CA did not sign. */
async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-intruder-"));
  const args = [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "key.pem",
    "-out",
    "cert.pem",
    "-days",
    "1",
    "-subj",
    "/CN=intruder",
  ];
  expect(await Bun.spawn(["openssl", ...args], { cwd: dir, stdout: "ignore", stderr: "ignore" }).exited).toBe(0);
  const [cert, key] = await Promise.all([
    Bun.file(join(dir, "cert.pem")).text(),
    Bun.file(join(dir, "key.pem")).text(),
  ]);
  await rm(dir, { recursive: true });
  return { cert, key };
}

let server: TestApiServer;
beforeAll(async () => {
  server = await startTestApiServer();
});
afterAll(() => server.stop());

describe("errors, auth, accounting", () => {
  test("429 carries Retry-After and is injected only for the matching verb and resource", async () => {
    server.failNext({ verb: "list", resource: "pods", status: 429, retryAfterSeconds: 7, count: 2 });
    expect((await apiFetch(server, "/api/v1/nodes")).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const limited = await apiFetch(server, "/api/v1/pods");
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("7");
      expect(await limited.json()).toMatchObject({
        kind: "Status",
        reason: "TooManyRequests",
        code: 429,
        details: { retryAfterSeconds: 7 },
      });
    }
    expect((await apiFetch(server, "/api/v1/pods")).status).toBe(200);
  });

  test("bearer token and client certificate authenticate; anything else is 401", async () => {
    expect((await apiFetch(server, "/api/v1/nodes", "token")).status).toBe(200);
    expect((await apiFetch(server, "/api/v1/nodes", "cert")).status).toBe(200);
    const anonymous = await apiFetch(server, "/api/v1/nodes", "none");
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Unauthorized",
      reason: "Unauthorized",
      code: 401,
    });
    const wrongToken = await fetch(`${server.url}/api/v1/nodes`, {
      headers: { authorization: "Bearer nope" },
      tls: { ca: server.caPem },
    });
    expect(wrongToken.status).toBe(401);
    const foreign = await startTestApiServer({ tls: false });
    const open = await startTestApiServer({ anonymous: true });
    try {
      const intruder = await selfSignedCertificate();
      expect((await fetch(`${server.url}/api/v1/nodes`, { tls: { ca: server.caPem, ...intruder } })).status).toBe(401);
      expect((await apiFetch(foreign, "/api/v1/nodes", "none")).status).toBe(401);
      expect((await apiFetch(open, "/api/v1/nodes", "none")).status).toBe(200);
    } finally {
      await Promise.all([foreign.stop(), open.stop()]);
    }
  });

  test(
    "Bun quirk: a node:https request socket says whether the client certificate verified, " +
      "but has no getPeerCertificate",
    async () => {
      const pki = await testPki();
      let seen: { authorized: boolean; getPeerCertificate: string } | undefined;
      const https = createHttpsServer(
        { key: pki.serverKeyPem, cert: pki.serverCertPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: false },
        (req, res) => {
          const socket = req.socket as TLSSocket;
          seen = { authorized: socket.authorized, getPeerCertificate: typeof socket.getPeerCertificate };
          res.end();
        },
      );
      await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = https.address() as { port: number };
        await fetch(`https://127.0.0.1:${port}/`, {
          tls: { ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem },
        });
        // so the server cannot read the user's CN
        expect(seen).toEqual({ authorized: true, getPeerCertificate: "undefined" });
      } finally {
        https.closeAllConnections();
        https.close();
      }
    },
  );

  test("requests are counted by verb and resource", async () => {
    server.resetRequests();
    await apiFetch(server, "/api/v1/pods");
    await apiFetch(server, "/apis/apps/v1/namespaces/x/deployments");
    await apiFetch(server, "/api/v1/nodes/missing");
    const watch = await WatchReader.open(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
    await watch.close();
    expect(server.requests()).toEqual({ "list pods": 1, "list deployments": 1, "get nodes": 1, "watch pods": 1 });
    server.resetRequests();
    expect(server.requests()).toEqual({});
  });

  test("unknown paths and objects are 404 Status bodies", async () => {
    const unknown = await apiFetch(server, "/api/v1/widgets");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ kind: "Status", reason: "NotFound", code: 404 });
    const missing = await apiFetch(server, "/apis/apps/v1/namespaces/x/deployments/nope");
    expect(await missing.json()).toMatchObject({
      message: 'deployments.apps "nope" not found',
      details: { name: "nope", group: "apps", kind: "deployments" },
    });
  });
});

describe("@kubernetes/client-node against the test server", () => {
  test(
    "under Bun, client-node ignores the kubeconfig CA: " + "listNamespacedPod over TLS fails with a certificate error",
    async () => {
      const config = new KubeConfig();
      config.loadFromString(server.kubeconfig("token"));
      const api = config.makeApiClient(CoreV1Api);
      const failure = await api.listNamespacedPod({ namespace: "default" }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(String((failure as { code?: string })?.code ?? failure)).toMatch(
        /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|certificate/i,
      );
    },
  );

  test("without TLS, client-node's typed LIST and its informer (list + watch) work against the server", async () => {
    const plain = await startTestApiServer({ tls: false });
    try {
      plain.create(testPod("typed-1", "typed"));
      const config = new KubeConfig();
      config.loadFromString(plain.kubeconfig("token"));
      const api = config.makeApiClient(CoreV1Api);
      const list = await api.listNamespacedPod({ namespace: "typed" });
      expect(list.items.map((p) => p.metadata?.name)).toEqual(["typed-1"]);
      expect(list.items[0]!.spec?.nodeName).toBe("ip-10-0-1-23.eu-west-1.compute.internal");

      const informer = makeInformer<V1Pod>(config, "/api/v1/namespaces/typed/pods", () =>
        api.listNamespacedPod({ namespace: "typed" }),
      );
      const added: string[] = [];
      informer.on("add", (p) => added.push(p.metadata!.name!));
      await informer.start();
      await waitFor(() => plain.openWatches() === 1, 5000, "the informer's watch");
      plain.create(testPod("typed-2", "typed"));
      await waitFor(() => added.includes("typed-2"), 5000, "the informer to see typed-2");
      expect(added).toEqual(["typed-1", "typed-2"]);
      await informer.stop();
    } finally {
      await plain.stop();
    }
  });

  test("the kubeconfig carries the CA and the client certificate as data", () => {
    const config = new KubeConfig();
    config.loadFromString(server.kubeconfig("cert"));
    expect(Buffer.from(config.getCurrentCluster()!.caData!, "base64").toString()).toBe(server.caPem);
    expect(Buffer.from(config.getCurrentUser()!.certData!, "base64").toString()).toBe(server.clientCertPem);
    expect(config.getCurrentCluster()!.server).toBe(server.url);
  });
});
