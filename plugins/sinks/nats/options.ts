/**
 * The NATS sink's config (the single source of truth for its defaults) and its
 * translation into the NATS client's connection options: servers, credentials, TLS.
 */
import * as v from "valibot";
import { readFile } from "node:fs/promises";
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import { duration, positiveInt } from "../../../sdk/schema.ts";
import { PREFIX_PATTERN } from "../../../protocol/subjects.ts";

const nonEmpty = v.pipe(v.string(), v.minLength(1));

const AUTH_KEYS = ["user", "token", "nkeySeed", "nkeySeedFile", "credsFile"] as const;

export const natsSinkSchema = v.pipe(
  v.strictObject({
    /** NATS URLs (`nats://`, `tls://`); the client picks among them and fails over. Required: no NATS is assumed. */
    servers: v.pipe(
      v.union([nonEmpty, v.array(nonEmpty)], 'list the NATS server URLs, e.g. ["nats://nats:4222"]'),
      v.transform((s) => (Array.isArray(s) ? s : [s])),
      v.minLength(1, "list at least one server"),
    ),
    /** Subject prefix; `kubemeta.<cluster>` by default (see the README for how a cluster name becomes one token). */
    prefix: v.optional(v.pipe(v.string(), v.regex(PREFIX_PATTERN, "dot-separated tokens of letters, digits, '_' and '-' (no wildcards)"))),
    /** Connection name shown by the server's monitoring; `kubemeta-<cluster>` by default. */
    connectionName: v.optional(nonEmpty),
    user: v.optional(nonEmpty),
    password: v.optional(v.string()),
    token: v.optional(nonEmpty),
    /** An nkey seed (`SU…`), e.g. `${NATS_NKEY_SEED}`. */
    nkeySeed: v.optional(nonEmpty),
    /** A file holding an nkey seed. */
    nkeySeedFile: v.optional(nonEmpty),
    /** A `.creds` file (user JWT and nkey seed, decentralized auth). */
    credsFile: v.optional(nonEmpty),
    tls: v.optional(
      v.pipe(
        v.strictObject({
          /** CA bundle that signed the server's certificate (the system's roots otherwise). */
          caFile: v.optional(nonEmpty),
          /** Client certificate, for servers that verify clients. */
          certFile: v.optional(nonEmpty),
          keyFile: v.optional(nonEmpty),
          /** TLS before the NATS INFO (servers configured with `handshake_first`). */
          handshakeFirst: v.optional(v.boolean(), false),
        }),
        v.check((t) => !t.certFile === !t.keyFile, "tls.certFile and tls.keyFile go together"),
      ),
    ),
    /** Delay before a reconnect attempt grows from `initial` to `max` (exponential, jittered); attempts never stop. */
    reconnect: v.optional(v.strictObject({ initial: v.optional(duration, "250ms"), max: v.optional(duration, "10s") }), {}),
    /** Handshake deadline of one connection attempt. */
    connectTimeout: v.optional(duration, "5s"),
    /** Client pings: two unanswered ones mean a dead connection. */
    pingInterval: v.optional(duration, "20s"),
    /** Updates per publish batch (one flush each). */
    batchSize: v.optional(positiveInt, 500),
    /** Longest time between two saves of the sink's cursor while it publishes. */
    cursorSaveInterval: v.optional(duration, "1s"),
    replay: v.optional(
      v.strictObject({
        /** Answer `<prefix>.replay` requests. */
        enabled: v.optional(v.boolean(), true),
        /** Queue group: several kubemeta instances share the requests. */
        queue: v.optional(nonEmpty, "kubemeta"),
        /** Requests answered at once; others wait their turn. */
        concurrency: v.optional(positiveInt, 4),
      }),
      {},
    ),
  }),
  v.check((c) => AUTH_KEYS.filter((k) => c[k] !== undefined).length <= 1, `use one of ${AUTH_KEYS.join(", ")} (user with password)`),
  v.check((c) => (c.user === undefined) === (c.password === undefined), "user and password go together"),
);

export type NatsSinkConfig = v.InferOutput<typeof natsSinkSchema>;

/**
 * The client's options; reads the credential files (so a rotated file is picked up on the
 * next connection). `reconnectWaitMs` is asked before every reconnect attempt.
 */
export async function connectionOptions(config: NatsSinkConfig, name: string, reconnectWaitMs: () => number): Promise<NodeConnectionOptions> {
  const options: NodeConnectionOptions = {
    servers: config.servers,
    name,
    timeout: config.connectTimeout,
    pingInterval: config.pingInterval,
    maxPingOut: 2,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectDelayHandler: reconnectWaitMs,
  };
  options.user = config.user;
  options.pass = config.password;
  options.token = config.token;
  const seed = config.nkeySeed ?? (config.nkeySeedFile ? (await readFile(config.nkeySeedFile, "utf8")).trim() : undefined);
  if (seed) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  if (config.credsFile) options.authenticator = credsAuthenticator(await readFile(config.credsFile));
  if (config.tls) {
    const { caFile, certFile, keyFile, handshakeFirst } = config.tls;
    options.tls = { caFile, certFile, keyFile, handshakeFirst };
  }
  return options;
}
