/**
 * A kubeconfig that names a certificate or key both as a file and inline (`certificate-authority` beside
 * `certificate-authority-data`, and a user's `client-certificate`, `client-key` likewise), shown against the test API
 * server over TLS with its own CA and client certificate. kubectl refuses such a kubeconfig (client-go's ConfirmUsable:
 * "certificate-authority-data and certificate-authority are both specified for c. certificate-authority-data will
 * override.", an error however it reads); client-node would take the file and drop the data.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { b64, kubeconfigSuite, status, withCluster, write } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();

test("a CA both as a file and as data is refused at load, as kubectl refuses it; each alone is used", async () => {
  const ca = await write(join(suite.dir, "ca.pem"), suite.server.caPem);
  // A certificate that did not sign the server's: the file a client-node request would have trusted instead.
  const other = await write(join(suite.dir, "other-ca.pem"), suite.server.clientCertPem);
  const token = { token: suite.server.token };
  expect(
    await status({ kubeconfig: await withCluster(suite, "ca-file", { "certificate-authority": ca }, token) }),
  ).toBe(200);
  const data = { "certificate-authority-data": b64(suite.server.caPem) };
  expect(await status({ kubeconfig: await withCluster(suite, "ca-data", data, token) })).toBe(200);

  const both = await withCluster(suite, "ca-both", { "certificate-authority": other, ...data }, token);
  expect(() => loadKubeConfig({ kubeconfig: both })).toThrow(
    `cannot load kubeconfig ${both}: cluster "c" has both certificate-authority and certificate-authority-data ` +
      "(kubectl refuses both too): keep one",
  );
});

test("a client certificate or key both as a file and as data is refused at load; files alone are used", async () => {
  const ca = { "certificate-authority-data": b64(suite.server.caPem) };
  const cert = await write(join(suite.dir, "client.pem"), suite.server.clientCertPem);
  const key = await write(join(suite.dir, "client.key"), suite.server.clientKeyPem);
  const files = { "client-certificate": cert, "client-key": key };
  expect(await status({ kubeconfig: await withCluster(suite, "client-files", ca, files) })).toBe(200);

  const both = await withCluster(suite, "client-both", ca, {
    ...files,
    "client-certificate-data": b64(suite.server.clientCertPem),
    "client-key-data": b64(suite.server.clientKeyPem),
  });
  expect(() => loadKubeConfig({ kubeconfig: both })).toThrow(
    `cannot load kubeconfig ${both}: user "u" has both client-certificate and client-certificate-data ` +
      "(kubectl refuses both too): keep one; " +
      'user "u" has both client-key and client-key-data (kubectl refuses both too): keep one',
  );
});

test("a client certificate without its key, or a key without it, a token (file) and a password: refused", async () => {
  const ca = { "certificate-authority-data": b64(suite.server.caPem) };
  const cert = { "client-certificate-data": b64(suite.server.clientCertPem) };
  const key = { "client-key-data": b64(suite.server.clientKeyPem) };
  const tokenFile = await write(join(suite.dir, "basic-token"), suite.server.token);
  const refusals: [string, Record<string, string>, string][] = [
    ["cert-alone", cert, 'user "u" has a client-certificate without its client-key'],
    ["key-alone", key, 'user "u" has a client-key without its client-certificate'],
    ["token-and-basic", { token: suite.server.token, username: "admin", password: "pw" }, 'user "u" has both a token'],
    // Was: loaded, and Basic sent, the token file's token dropped.
    ["token-file-and-basic", { tokenFile, username: "admin" }, 'user "u" has both a token file and a username'],
  ];
  for (const [name, user, words] of refusals) {
    const file = await withCluster(suite, name, ca, user);
    expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(`cannot load kubeconfig ${file}: ${words}`);
  }
  expect(await status({ kubeconfig: await withCluster(suite, "cert-and-key", ca, { ...cert, ...key }) })).toBe(200);
});

test("insecure-skip-tls-verify beside a CA (file or data) is refused at load, as kubectl refuses it", async () => {
  const token = { token: suite.server.token };
  const insecure = { "insecure-skip-tls-verify": true };
  // A CA that did not sign the server's certificate: with both, the CA the reader trusts would never be checked.
  const other = await write(join(suite.dir, "not-the-ca.pem"), suite.server.clientCertPem);
  const cases: Record<string, Record<string, string>> = {
    "insecure-ca-file": { "certificate-authority": other },
    "insecure-ca-data": { "certificate-authority-data": b64(suite.server.clientCertPem) },
  };
  for (const [name, ca] of Object.entries(cases)) {
    const file = await withCluster(suite, name, { ...ca, ...insecure }, token);
    const key = Object.keys(ca)[0];
    expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
      `cannot load kubeconfig ${file}: cluster "c" has both insecure-skip-tls-verify and ${key} (kubectl refuses ` +
        "both too: specifying a root certificates file with the insecure flag is not allowed): keep one",
    );
  }
  expect(await status({ kubeconfig: await withCluster(suite, "insecure-alone", insecure, token) })).toBe(200);
});
