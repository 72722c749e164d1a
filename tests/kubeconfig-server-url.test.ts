/**
 * A cluster's `server` URL as kubectl reads it, each shown with a request over TLS on loopback: behind a front that
 * serves the test API server under a path prefix, as Rancher serves each cluster it manages
 * (`https://rancher.example.com/k8s/clusters/c-1`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { testPki } from "../simulator/certs.ts";
import { b64, kubeconfigSuite, status, withCluster } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();
const PREFIX = "/k8s/clusters/c-1";
let rancher: Bun.Server<undefined>;

beforeAll(async () => {
  const pki = await testPki();
  rancher = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: pki.serverCertPem, key: pki.serverKeyPem },
    fetch(request) {
      const { pathname, search } = new URL(request.url);
      // kube-apiserver answers 404 to a path with an empty segment (kubernetes/kubernetes#70942), and the front
      // serves the cluster under its prefix alone.
      if (!pathname.startsWith(`${PREFIX}/`) || pathname.includes("//"))
        return new Response("404 page not found\n", { status: 404 });
      const upstream = new URL(`${pathname.slice(PREFIX.length)}${search}`, suite.server.url);
      return fetch(upstream, { headers: request.headers, tls: { ca: pki.caPem } });
    },
  });
});
afterAll(() => rancher.stop(true));

test("a server URL with a path prefix, as Rancher gives, with or without a trailing slash", async () => {
  const cluster = { "certificate-authority-data": b64(suite.server.caPem) };
  const user = { token: suite.server.token };
  const base = `https://127.0.0.1:${rancher.port}${PREFIX}`;
  const file = await withCluster(suite, join("prefix", "config"), { ...cluster, server: base }, user);
  expect(await status({ kubeconfig: file })).toBe(200);
  // Was 404: `…/c-1//api/v1/namespaces` (kubectl joins the paths as paths: one slash).
  for (const server of [`${base}/`, `https://127.0.0.1:${rancher.port}//k8s//clusters/c-1//`]) {
    const slashed = await withCluster(suite, join("slashed", "config"), { ...cluster, server }, user);
    expect(await status({ kubeconfig: slashed })).toBe(200);
  }
});

test("a server URL without a scheme is https:// with TLS settings, as for kubectl; no http(s) one loads", async () => {
  const cluster = { "certificate-authority-data": b64(suite.server.caPem) };
  const user = { token: suite.server.token };
  const { port } = new URL(suite.server.url);
  for (const server of [`127.0.0.1:${port}`, `localhost:${port}`]) {
    const file = await withCluster(suite, join("no-scheme", "config"), { ...cluster, server }, user);
    // Was: `fetch() URL is invalid` at each request (`--check` said the config is valid).
    expect(await status({ kubeconfig: file })).toBe(200);
  }
  const ftp = await withCluster(suite, join("ftp", "config"), { ...cluster, server: `ftp://127.0.0.1:${port}` }, user);
  expect(() => loadKubeConfig({ kubeconfig: ftp })).toThrow(
    `cannot load kubeconfig ${ftp}: cluster "c" has a server URL that is no http:// nor https:// one`,
  );
});
