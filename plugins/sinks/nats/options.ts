/**
 * The NATS sink's config (the single source of truth for its defaults) and its
 * translation into the NATS client's connection options: servers, credentials, TLS.
 */
import { credsAuthenticator, nkeyAuthenticator, nkeys, type NodeConnectionOptions } from "@nats-io/transport-node";
import {
  alias,
  batchSchema,
  batchSizeSchema,
  deprecatedKey,
  duration,
  initialWithinMax,
  positiveDuration,
  positiveInt,
  retrySchema,
  stallAfterSchema,
  v,
} from "../../../sdk/index.ts";
import { readCredentialFile } from "../../../sdk/credential-file.ts";
import { credentialPath } from "../../../sdk/schema.ts";
import type { ConnectionOptions } from "./connection.ts";
import { natsUser } from "./permissions.ts";
import {
  credentialsAgree,
  inboxPrefixProblem,
  isNatsServer,
  NATS_SERVER_RULE,
  natsServerOptions,
  PREFIX_PATTERN,
  redactServer,
} from "../../../protocol/subjects.ts";

const nonEmpty = v.pipe(v.string(), v.minLength(1));
/** Whether the client can sign with `seed` (`nkeySeed`, or `nkeySeedFile`'s trimmed content: nats/files.ts). */
export function isNkeySeed(seed: string): boolean {
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed));
    return true;
  } catch {
    return false;
  }
}

/** A seed the client can sign with, checked before anything starts; never quoted (it is a secret). */
const nkeySeed = v.pipe(
  nonEmpty,
  v.check(isNkeySeed, "not an nkey seed: expected the seed of a user key (SU…), as `nsc` or `nk -gen user` write it"),
);
const server = v.pipe(
  v.string(),
  // Quoted without its credentials: config errors are printed and logged.
  v.check(
    isNatsServer,
    (issue) =>
      `${JSON.stringify(redactServer(String(issue.input)))} is not a NATS server: expected ${NATS_SERVER_RULE}`,
  ),
);
/**
 * What NATS takes as a name in its protocol (a queue group goes on the SUB line as it is): whitespace there makes the
 * server close the connection, and the client reconnects for ever without saying why. Held to the prefix's rule.
 */
const NATS_NAME_RULE = "dot-separated tokens of letters, digits, '_' and '-' (no spaces or wildcards)";

/** The sink's own credentials: with any of them set, credentials in the servers' URLs are not used. */
const AUTH_KEYS = ["user", "token", "nkeySeed", "nkeySeedFile", "credsFile"] as const;

const described = <S extends v.GenericSchema>(schema: S, description: string) =>
  v.optional(v.pipe(schema, v.description(description)));

export const natsSinkSchema = v.pipe(
  v.strictObject({
    // Required: no NATS is assumed.
    servers: v.pipe(
      v.union([server, v.array(server)], 'list the NATS server URLs, e.g. ["nats://nats:4222"]'),
      v.transform((s) => (Array.isArray(s) ? s : [s])),
      v.minLength(1, "list at least one server"),
      v.check(
        (servers) => credentialsAgree(servers),
        "the servers' URLs carry different credentials: one connection fails over between them; " +
          "put them in user and password, or token, instead",
      ),
      v.description(
        "NATS URLs (`nats://`, `tls://`), one or a list; the client fails over between them. Credentials in a URL " +
          "(`nats://user:password@host`, `nats://token@host`, percent-encoded) are used for every server when none " +
          "of the keys below is set (kubemeta hides them in its logs).",
      ),
    ),
    // The default depends on the cluster name (see the README for how it becomes one token).
    prefix: v.optional(
      v.pipe(
        v.string(),
        v.regex(PREFIX_PATTERN, NATS_NAME_RULE),
        v.check(
          (prefix) => inboxPrefixProblem(prefix) === undefined,
          ({ input }) => inboxPrefixProblem(input)!,
        ),
        v.metadata({ default: "kubemeta.<cluster>" }),
        v.description(
          "Subject prefix: dot-separated tokens of letters, digits, `_`, `-`; not `_INBOX`, where NATS clients take " +
            "their replies.",
        ),
      ),
    ),
    connectionName: v.optional(
      v.pipe(
        nonEmpty,
        v.metadata({ default: "kubemeta-<cluster>" }),
        v.description("Name shown in the server's monitoring."),
      ),
    ),
    user: described(nonEmpty, "User and password (together)."),
    password: described(v.string(), "User and password (together)."),
    token: described(nonEmpty, "Token authentication."),
    nkeySeed: described(nkeySeed, "An nkey seed (`SU…`), e.g. `${NATS_NKEY_SEED}`."),
    nkeySeedFile: described(credentialPath, "A file holding an nkey seed."),
    credsFile: described(
      credentialPath,
      "A `.creds` file (JWT + seed, decentralized auth). These files (and `nkeySeedFile`, `tls.*File`) are read " +
        "at each connection attempt and by `--check`, only if regular files of at most 1 MiB (see Configuration): " +
        "one missing, not a regular file, or holding something else than its key says, is a config error there.",
    ),
    tls: v.optional(
      v.pipe(
        v.strictObject({
          caFile: described(credentialPath, "CA that signed the server's certificate (system roots otherwise)."),
          certFile: described(credentialPath, "Client certificate and key, for servers that verify clients."),
          keyFile: described(credentialPath, "Client certificate and key, for servers that verify clients."),
          handshakeFirst: v.optional(
            v.pipe(v.boolean(), v.description("TLS before the server's INFO (servers with `handshake_first`).")),
            false,
          ),
        }),
        v.check((t) => !t.certFile === !t.keyFile, "tls.certFile and tls.keyFile go together"),
        v.description(
          "TLS to the servers (implied by a `tls://` URL: a server that then offers none is refused, never logged " +
            "in to in the clear).",
        ),
      ),
    ),
    reconnect: v.optional(
      v.pipe(
        v.strictObject({
          initial: v.optional(
            v.pipe(positiveDuration, v.description("First delay between connection attempts.")),
            "250ms",
          ),
          max: v.optional(
            v.pipe(
              duration,
              v.description(
                "Longest delay between connection attempts, and between tries of a replay subscription the server " +
                  "refused.",
              ),
            ),
            "10s",
          ),
        }),
        initialWithinMax,
        v.description("Delay between connection attempts: exponential, jittered, never giving up."),
      ),
      {},
    ),
    connectTimeout: v.optional(
      v.pipe(
        positiveDuration,
        v.description(
          "Handshake deadline of one attempt. An attempt not over after twice this and a second (reading a " +
            "credential file included) counts as failed, and the next one starts.",
        ),
      ),
      "5s",
    ),
    pingInterval: v.optional(
      v.pipe(positiveDuration, v.description("Client pings; two unanswered ones mean a dead connection.")),
      "20s",
    ),
    batch: batchSchema({ size: 500 }),
    // A batch fails when the connection drops before its flush: it is published again once NATS is back.
    retry: retrySchema({ initial: "100ms", max: "5s" }),
    stallAfter: stallAfterSchema(),
    cursorSaveInterval: v.optional(
      v.pipe(
        duration,
        v.description(
          "Longest a published position goes unsaved, and least time between two saves of the cursor: what a crash " +
            "(kill -9) publishes again at the next start.",
        ),
      ),
      "1s",
    ),
    replay: v.optional(
      v.pipe(
        v.strictObject({
          enabled: v.optional(v.pipe(v.boolean(), v.description("Answer `<prefix>.replay`.")), true),
          queue: v.optional(
            v.pipe(
              v.string(),
              v.regex(PREFIX_PATTERN, `a queue group name is ${NATS_NAME_RULE}`),
              v.description("Queue group of the responders: tokens of letters, digits, `_`, `-`, dot-separated."),
            ),
            "kubemeta",
          ),
          concurrency: v.optional(
            v.pipe(
              positiveInt,
              v.description("Requests answered at once, two resets at most among them; the others wait."),
            ),
            4,
          ),
        }),
        v.description("The replay responder (`<prefix>.replay`)."),
      ),
      {},
    ),
    batchSize: deprecatedKey(batchSizeSchema(), "batch.size"),
  }),
  v.check(
    (c) => AUTH_KEYS.filter((k) => c[k] !== undefined).length <= 1,
    `use one of ${AUTH_KEYS.join(", ")} (user with password)`,
  ),
  v.check((c) => (c.user === undefined) === (c.password === undefined), "user and password go together"),
  v.transform(({ batchSize, ...config }) => ({
    ...config,
    batch: { ...config.batch, size: alias(batchSize, config.batch.size) },
  })),
);

export type NatsSinkConfig = v.InferOutput<typeof natsSinkSchema>;

/** The key of the sink's own credentials, if it has any (then a URL's are not used). */
export function ownCredentials(config: NatsSinkConfig): (typeof AUTH_KEYS)[number] | undefined {
  return AUTH_KEYS.find((key) => config[key] !== undefined);
}

/**
 * The client's options, and the user they authenticate as; reads the credential files (so a rotated file is picked up
 * on the next connection; the TLS files are read by the transport at each connection and reconnection: connect.ts).
 * `reconnectWaitMs` is asked before every reconnect attempt.
 */
export async function connectionOptions(
  config: NatsSinkConfig,
  name: string,
  reconnectWaitMs: () => number,
): Promise<ConnectionOptions> {
  const options: NodeConnectionOptions = {
    ...natsServerOptions(config.servers, ownCredentials(config) !== undefined),
    name,
    timeout: config.connectTimeout,
    pingInterval: config.pingInterval,
    maxPingOut: 2,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectDelayHandler: reconnectWaitMs,
  };
  if (config.user !== undefined) Object.assign(options, { user: config.user, pass: config.password });
  if (config.token !== undefined) options.token = config.token;
  const seed = config.nkeySeedFile
    ? (await readCredentialFile("nkeySeedFile", config.nkeySeedFile)).toString("utf8").trim()
    : config.nkeySeed;
  if (seed) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  const creds = config.credsFile ? await readCredentialFile("credsFile", config.credsFile) : undefined;
  if (creds) options.authenticator = credsAuthenticator(creds);
  if (config.tls) {
    const { caFile, certFile, keyFile, handshakeFirst } = config.tls;
    options.tls = { caFile, certFile, keyFile, handshakeFirst };
  }
  return { client: options, user: natsUser(options, { seed, creds }) };
}
