/**
 * A cluster's `server` URL as kubectl reads it, each shown with a request over TLS on loopback: behind a front that
 * serves the test API server under a path prefix, as Rancher serves each cluster it manages
 * (`https://rancher.example.com/k8s/clusters/c-1`).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { b64, kubeconfigSuite, status, tlsFront, withCluster } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();
const PREFIX = "/k8s/clusters/c-1";
// kube-apiserver answers 404 to a path with an empty segment (kubernetes/kubernetes#70942), and the front serves the
// cluster under its prefix alone.
const rancher = tlsFront(suite, ({ pathname, search }) =>
  pathname.startsWith(`${PREFIX}/`) && !pathname.includes("//")
    ? `${pathname.slice(PREFIX.length)}${search}`
    : undefined,
);

test("a server URL with a path prefix, as Rancher gives, with or without a trailing slash", async () => {
  const cluster = { "certificate-authority-data": b64(suite.server.caPem) };
  const user = { token: suite.server.token };
  const base = `${rancher.url}${PREFIX}`;
  const file = await withCluster(suite, join("prefix", "config"), { ...cluster, server: base }, user);
  expect(await status({ kubeconfig: file })).toBe(200);
  // Was 404: `…/c-1//api/v1/namespaces` (kubectl joins the paths as paths: one slash).
  for (const server of [`${base}/`, `${rancher.url}//k8s//clusters/c-1//`]) {
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
  // Another scheme, or one named before what is no URL (was: prefixed again, `https://https://exa mple`: host `https`).
  for (const server of [`ftp://127.0.0.1:${port}`, "https://exa mple:6443"]) {
    const bad = await withCluster(suite, join("bad", "config"), { ...cluster, server }, user);
    expect(() => loadKubeConfig({ kubeconfig: bad })).toThrow(
      `cannot load kubeconfig ${bad}: cluster "c" has a server URL that is no http:// nor https:// one`,
    );
  }
});
