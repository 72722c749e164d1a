/**
 * A kubeconfig's CA, client certificate and key, from files or inline data, read as credential files and checked as
 * kubectl checks them at load (client-go: `unable to load root certificates`, `tls: failed to find any PEM data in
 * certificate input`, `tls: private key does not match public key`). Unchecked, one that Bun's TLS cannot take fails
 * every request with `FailedToOpenSocket: Was there a typo in the url or port?`, which points at the server's address
 * rather than at the file, and passes `--check`.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { readCredentialFileSync } from "../sdk/credential-file.ts";
import { ENCRYPTED_KEY, PEM_CERTIFICATE, PEM_PRIVATE_KEY, usableByTls } from "../protocol/pem.ts";

/** One of them as the kubeconfig gives it: what a message calls it (`its client-key /k.pem`), its PEM, its origin. */
interface Part {
  said: string;
  pem: string;
  fromFile: boolean;
}

function part(key: string, file: string | undefined, data: string | undefined): Part | undefined {
  if (file) {
    const pem = readCredentialFileSync(`its ${key}`, file).toString("latin1");
    return { said: `its ${key} ${file}`, pem, fromFile: true };
  }
  if (data) return { said: `its ${key}-data`, pem: Buffer.from(data, "base64").toString("latin1"), fromFile: false };
  return undefined;
}

/** The current cluster's CA and the current user's client certificate and key, the files among them read. */
function parts(kc: KubeConfig) {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  return {
    ca: part("certificate-authority", cluster?.caFile, cluster?.caData),
    cert: part("client-certificate", user?.certFile, user?.certData),
    key: part("client-key", user?.keyFile, user?.keyData),
  };
}

/** Throws the first of them TLS cannot take, saying which; a certificate without its key is load.ts's to refuse. */
function check({ ca, cert, key }: ReturnType<typeof parts>): void {
  if (ca && !(PEM_CERTIFICATE.test(ca.pem) && usableByTls({ ca: ca.pem })))
    throw new Error(`${ca.said} holds no PEM certificate (kubectl refuses it too)`);
  if (cert && !PEM_CERTIFICATE.test(cert.pem))
    throw new Error(`${cert.said} holds no PEM certificate (kubectl refuses it too)`);
  if (key && !PEM_PRIVATE_KEY.test(key.pem))
    throw new Error(`${key.said} holds no PEM private key (kubectl refuses it too)`);
  if (key && ENCRYPTED_KEY.test(key.pem))
    throw new Error(
      `${key.said} is encrypted with a passphrase, which kubectl takes none of either: write it unencrypted`,
    );
  if (cert && key && !usableByTls({ cert: cert.pem, key: key.pem }))
    throw new Error(`${key.said} is not the private key of ${cert.said} (kubectl refuses the pair too)`);
}

/** At load: every one of them, files and data alike. */
export function checkTlsMaterial(kc: KubeConfig): void {
  check(parts(kc));
}

/**
 * `kc` with the files of its current cluster and user (CA, client certificate and key) read as credential files,
 * checked, and put in as data: client-node would read each itself at every request, with readFileSync, where a FIFO
 * blocks the event loop for ever. Read at each request, so a renewed certificate is sent at once, and a bad renewal
 * said at once. A view on `kc` (its prototype), so that client-node's authenticators and their caches (an exec
 * plugin's credential) are `kc`'s own.
 */
export function withFilesRead(kc: KubeConfig): KubeConfig {
  const read = parts(kc);
  if (!read.ca?.fromFile && !read.cert?.fromFile && !read.key?.fromFile) return kc;
  check(read);
  const data = (found: Part | undefined) => (found ? Buffer.from(found.pem, "latin1").toString("base64") : undefined);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const view = Object.create(kc) as KubeConfig;
  if (cluster && read.ca?.fromFile) {
    const withData = { ...cluster, caFile: undefined, caData: data(read.ca) };
    view.clusters = kc.clusters.map((entry) => (entry === cluster ? withData : entry));
  }
  if (user && (read.cert?.fromFile || read.key?.fromFile)) {
    const withData = {
      ...user,
      certFile: undefined,
      certData: data(read.cert),
      keyFile: undefined,
      keyData: data(read.key),
    };
    view.users = kc.users.map((entry) => (entry === user ? withData : entry));
  }
  return view;
}
