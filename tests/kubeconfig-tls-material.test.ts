/**
 * A kubeconfig's CA, client certificate and key that are no such thing (a file overwritten by mistake, the wrong key
 * beside a renewed certificate, data that is another file's base64), against the test API server over TLS. kubectl
 * refuses them at load (client-go: `unable to load root certificates`, `tls: failed to find any PEM data in
 * certificate input`, `tls: private key does not match public key`); Bun's fetch fails every request with
 * `FailedToOpenSocket: Was there a typo in the url or port?`, which points at the server's address, not at the file.
 */
import { expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { CredentialsError, createTransport } from "../kube/transport.ts";
import { b64, kubeconfigSuite, status, withCluster, write } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();

/** A private key of no certificate the test API server issued. */
const otherKey = () =>
  generateKeyPairSync("ec", { namedCurve: "prime256v1" })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();

test("a CA, certificate or key that is no PEM one, or a key not the certificate's: refused at load", async () => {
  const { caPem, clientCertPem, clientKeyPem, token } = suite.server;
  const file = (name: string, text: string) => write(join(suite.dir, name), text);
  const notPem = await file("not-pem", "-- an error page, or a token --\n");
  const encrypted = await file(
    "encrypted.key",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGbMFcGCSqGSIb3DQEFDTBKMCkG\n-----END ENCRYPTED PRIVATE KEY-----\n",
  );
  const [ca, cert, key, other] = await Promise.all([
    file("ca.pem", caPem),
    file("client.pem", clientCertPem),
    file("client.key", clientKeyPem),
    file("other.key", otherKey()),
  ]);
  const caFile = { "certificate-authority": ca };
  const pair = { "client-certificate": cert, "client-key": key };
  const refusals: [string, Record<string, string>, Record<string, string>, string][] = [
    ["ca-file", { "certificate-authority": notPem }, { token }, `its certificate-authority ${notPem} holds no PEM`],
    ["ca-data", { "certificate-authority-data": b64("garbage") }, { token }, "its certificate-authority-data holds"],
    ["cert-file", caFile, { ...pair, "client-certificate": notPem }, `its client-certificate ${notPem} holds no PEM`],
    ["cert-data", caFile, { "client-certificate-data": b64(caPem.slice(40)), "client-key": key }, "its client-cert"],
    ["key-file", caFile, { ...pair, "client-key": notPem }, `its client-key ${notPem} holds no PEM private key`],
    ["key-encrypted", caFile, { ...pair, "client-key": encrypted }, `its client-key ${encrypted} is encrypted`],
    ["key-other", caFile, { ...pair, "client-key": other }, `its client-key ${other} is not the private key of`],
  ];
  for (const [name, cluster, user, words] of refusals) {
    const kubeconfigFile = await withCluster(suite, name, cluster, user);
    expect(() => loadKubeConfig({ kubeconfig: kubeconfigFile })).toThrow(
      `cannot load kubeconfig ${kubeconfigFile}: ${words}`,
    );
  }
  expect(await status({ kubeconfig: await withCluster(suite, "good", caFile, pair) })).toBe(200);
});

test("a client certificate file replaced by no certificate after the load: the request says which file", async () => {
  const { caPem, clientCertPem, clientKeyPem } = suite.server;
  const cert = await write(join(suite.dir, "renewed-files", "client.pem"), clientCertPem);
  const key = await write(join(suite.dir, "renewed-files", "client.key"), clientKeyPem);
  const file = await withCluster(
    suite,
    "renewed",
    { "certificate-authority-data": b64(caPem) },
    { "client-certificate": cert, "client-key": key },
  );
  const { kc } = loadKubeConfig({ kubeconfig: file });
  const transport = createTransport(kc, () => kc);
  const response = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000));
  await response.body?.cancel();
  expect(response.status).toBe(200);
  // Each request reads the files again (a renewed certificate is sent at once): a bad renewal is said at the next.
  await writeFile(cert, "not a certificate\n");
  const failed = await transport.get("/api/v1/namespaces", AbortSignal.timeout(5000)).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(failed).toBeInstanceOf(CredentialsError);
  expect((failed as Error).message).toBe(
    `its client-certificate ${cert} holds no PEM certificate (kubectl refuses it too)`,
  );
});
