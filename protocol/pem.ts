/**
 * PEM blocks, as files name them: the server's `http.tls` and `tail --ca` refuse a file without the one they need, at
 * once, rather than a listener that cannot start or a client that fails every handshake.
 */

export const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
export const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
