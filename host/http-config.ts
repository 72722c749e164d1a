/** The `http` section: the one listener that the host and every plugin share. */
import * as v from "valibot";
import { existsSync } from "node:fs";
import { isIP, isIPv6 } from "node:net";
import { X509Certificate } from "node:crypto";
import { duration, port } from "../sdk/schema.ts";
import { readCredentialFileSync } from "../sdk/credential-file.ts";
import { tildeProblem } from "../sdk/tilde.ts";
import { BEARER_TOKEN_PATTERN } from "../protocol/token.ts";
import { ENCRYPTED_KEY, PEM_CERTIFICATE, PEM_PRIVATE_KEY, usableByTls } from "../protocol/pem.ts";

const readableFile = v.pipe(
  v.string(),
  v.minLength(1),
  // An empty path is said once, as empty.
  v.check(
    (path) => path === "" || existsSync(path),
    ({ input }) => {
      const tilde = tildeProblem(input as string, { reads: true });
      return tilde
        ? `file not found: the path ${tilde}`
        : "file not found (paths are relative to the working directory)";
    },
  ),
);

/** The file's text, read as a credential file (a FIFO never is: sdk/credential-file.ts), or why it cannot be. */
function readPem(path: string): string | Error {
  try {
    return readCredentialFileSync("file", path).toString("latin1");
  } catch (error) {
    return error as Error;
  }
}

/** The file's text if it holds a PEM block matching `begin`. */
function pemHolding(path: string, begin: RegExp): string | undefined {
  const text = readPem(path);
  return typeof text === "string" && begin.test(text) ? text : undefined;
}

/**
 * A file that exists and holds a PEM block matching `begin`: read at the check, so that a certificate and its key
 * swapped is a config error, not a listener that cannot start.
 */
const pemFile = (begin: RegExp, holding: string, unencrypted = false) =>
  v.pipe(
    readableFile,
    v.rawCheck(({ dataset, addIssue }) => {
      // A missing file is said once, above.
      if (!dataset.typed || !existsSync(dataset.value)) return;
      const text = readPem(dataset.value);
      if (text instanceof Error) addIssue({ message: text.message });
      else if (!begin.test(text)) addIssue({ message: `not a PEM file holding ${holding}` });
      else if (unencrypted && ENCRYPTED_KEY.test(text))
        addIssue({
          message:
            "the key is encrypted with a passphrase, which kubemeta takes none of: write it unencrypted " +
            "(openssl pkey -in <key> -out <new key>)",
        });
    }),
  );

/** Whether `key` is the private key of the certificate in `cert`; true where either file is wrong on its own. */
function pairs(tls: { cert: string; key: string }): boolean {
  const cert = pemHolding(tls.cert, PEM_CERTIFICATE);
  const key = pemHolding(tls.key, PEM_PRIVATE_KEY);
  if (cert === undefined || key === undefined || ENCRYPTED_KEY.test(key)) return true;
  return usableByTls({ cert, key });
}

/**
 * An origin as a browser sends it in `Origin` (RFC 6454 §6.2: lower case, punycode, no default port), which CORS
 * compares with an allowed one as written: undefined for an entry that is no origin (a user, a query, a fragment).
 */
function serializedOrigin(origin: string): string | undefined {
  const url = URL.parse(origin);
  return url && !url.username && !url.password && !url.search && !url.hash && url.href === `${url.origin}/`
    ? url.origin
    : undefined;
}

/** Bun.serve takes whole seconds; 0 disables the timeout, and 255 s is its maximum. */
const idleTimeout = v.pipe(
  duration,
  v.check((ms) => ms <= 255_000, "at most 255s (Bun.serve's limit)"),
  v.transform((ms) => Math.ceil(ms / 1000)),
);

/** A DNS name (RFC 1123 labels): a name that is all digits and dots is an IPv4 address or nothing. */
const HOST_NAME = /^(?=.{1,253}$)(?![\d.]+$)[a-z\d]([a-z\d-]{0,61}[a-z\d])?(\.[a-z\d]([a-z\d-]{0,61}[a-z\d])?)*$/i;

/**
 * An interface, checked with the config: Bun listens on every interface for an empty one (`address: ${ADDR}`, the
 * variable set empty), and fails its listen with an unrelated ENOTTY for most others that are no address.
 */
const address = v.pipe(
  v.string(),
  v.check(
    (text) => isIP(text) !== 0 || isIPv6(text.replace(/^\[(.*)\]$/, "$1")) || HOST_NAME.test(text),
    ({ input }) => `expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name of this machine${asListener(input)}`,
  ),
);

/** An address with its port (`0.0.0.0:8080`, `[::]:8080`), or a URL's start (`http://`). */
const WITH_PORT = /^(?:\[[^\]]*\]|[^:]*):\d*$/;
const WITH_SCHEME = /^[a-z][a-z\d+.-]*:\/\//i;

/** What users write for the listener as clients reach it, a URL or `host:port`: the part that is the port's. */
function asListener(input: unknown): string {
  const text = String(input);
  if (WITH_SCHEME.test(text)) return ", not a URL: the port is http.port, TLS http.tls";
  return WITH_PORT.test(text)
    ? ", without its port: write the port as http.port (0.0.0.0:8080 is address: 0.0.0.0, port: 8080)"
    : "";
}

export const httpSchema = v.strictObject({
  address: v.optional(
    v.pipe(
      address,
      v.description(
        "Interface to listen on: an IP address (`0.0.0.0` every IPv4 one, `::` every one) or a host name, of this " +
          "machine: one it does not have (a name that does not resolve, another machine's address) fails the start " +
          "(`http cannot listen`, exit 1), not `--check`, which binds nothing. Anything else, an empty value " +
          "included, is a config error; one with its port (`0.0.0.0:8080`) or a URL is told the port is `port`.",
      ),
    ),
    "0.0.0.0",
  ),
  port: v.optional(v.pipe(port, v.description("TCP port; `0` picks a free one.")), 8080),
  tls: v.optional(
    v.pipe(
      v.strictObject({
        cert: v.pipe(
          pemFile(PEM_CERTIFICATE, "a certificate"),
          v.description("PEM certificate chain file; it must exist and hold a certificate when the config is checked."),
        ),
        key: v.pipe(
          pemFile(PEM_PRIVATE_KEY, "a private key", true),
          v.description(
            "PEM private key file, the certificate's; it must exist, hold a private key, unencrypted (kubemeta " +
              "takes no passphrase), and pair with the certificate when the config is checked.",
          ),
        ),
      }),
      v.check(pairs, "the key is not the certificate's: they do not form a pair"),
      v.description(
        "Serve HTTPS with this certificate and key, read at start: a renewed certificate (cert-manager's, say) is " +
          "served from the next start on. Without it, plain HTTP.",
      ),
    ),
  ),
  tokens: v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string(),
          v.minLength(16, "a token needs at least 16 characters; use a long random value"),
          v.regex(BEARER_TOKEN_PATTERN, "a token is printable ASCII without spaces"),
        ),
      ),
      v.description(
        "Bearer tokens required on every path but `/healthz` and `/readyz` (plugin routes included), " +
          "at least 16 characters each, typically `${ENV_VAR}`s. Any one of them is enough, " +
          "so a token can be rotated without downtime. Empty: no auth.",
      ),
    ),
    [],
  ),
  corsOrigins: v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string(),
          v.regex(/^(\*|https?:\/\/[^/\s]+)$/, 'an origin such as "https://ui.example.com", or "*"'),
          v.check(
            (origin) => origin === "*" || serializedOrigin(origin) !== undefined,
            ({ input }) => `${JSON.stringify(input)} is no origin: write its scheme, host and port alone`,
          ),
          // Written in another case, with its default port or in Unicode, it is what the browser sends for it.
          v.transform((origin) => (origin === "*" ? origin : serializedOrigin(origin)!)),
        ),
      ),
      v.description(
        "Origins allowed to call the API from a browser (e.g. an `EventSource` on a dashboard), " +
          "such as `https://ui.example.com` (compared as a browser sends its `Origin`: `https://UI.example.com:443` " +
          'allows `https://ui.example.com`); `"*"` for any.',
      ),
    ),
    [],
  ),
  idleTimeout: v.optional(
    v.pipe(
      idleTimeout,
      v.description(
        "A plain request or response that sends nothing for this long is closed (at most `255s`, Bun's limit; " +
          "`0` disables it), some seconds later in fact: Bun checks every 4 s. A connection that has not sent a " +
          "whole request yet is closed after 8 to 12 s whatever this is (Bun's own rule, with `0` too). SSE " +
          "streams are exempt: they keep themselves alive with heartbeats.",
      ),
    ),
    "30s",
  ),
});

export type HttpConfig = v.InferOutput<typeof httpSchema>;

/**
 * What a valid `http.tls` would serve badly: a certificate past its end or before its start, refused by every client
 * that verifies it. A warning, not an error: the listener still answers probes, and a clock off by a minute must not
 * stop a start. Read at start only, the certificate is served until the next start, renewed on disk or not.
 */
export function certificateWarnings(http: HttpConfig, now = Date.now()): string[] {
  if (!http.tls) return [];
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(readCredentialFileSync("http.tls.cert", http.tls.cert));
  } catch {
    // What the schema read, it took for a certificate; a file changed since is the listener's to refuse.
    return [];
  }
  const [from, to] = [Date.parse(certificate.validFrom), Date.parse(certificate.validTo)];
  if (now > to)
    return [
      `http.tls.cert: the certificate expired on ${new Date(to).toISOString()}: every client that verifies it ` +
        "refuses the connection (it is read at start: renew it, then restart)",
    ];
  if (now < from)
    return [
      `http.tls.cert: the certificate is valid only from ${new Date(from).toISOString()}: until then every ` +
        "client that verifies it refuses the connection (is this machine's clock right?)",
    ];
  return [];
}
