/**
 * PEM blocks, as files name them: the server's `http.tls`, `tail --ca` and a kubeconfig's CA, client certificate and
 * key refuse a file without the one they need, at once, rather than a listener that cannot start or a client that
 * fails every handshake.
 */
import { createSecureContext } from "node:tls";

export const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
export const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/**
 * A private key encrypted with a passphrase: PKCS#8's block, or OpenSSL's traditional one with its header. Without
 * this, such a key pairs with no certificate, and the config said the key was not the certificate's.
 */
export const ENCRYPTED_KEY = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m;

/** Whether TLS takes this: a certificate and its private key, or a CA bundle (OpenSSL's parse, a handshake's). */
export function usableByTls(options: { ca: string } | { cert: string; key: string }): boolean {
  try {
    createSecureContext(options);
    return true;
  } catch {
    return false;
  }
}
