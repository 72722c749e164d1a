/**
 * `kubemeta tail`'s arguments: its usage text, and the options they make, each checked as the config checks the same
 * thing (stream names, kinds, namespaces, NATS servers and prefixes), so that a bad one is one line and exit 2.
 */
import * as v from "valibot";
import { argumentProblem, parseOptions } from "./args.ts";
import { ALL, isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";
import { eachOnce } from "../protocol/each-once.ts";
import {
  credentialsAgree,
  inboxPrefixProblem,
  isNatsServer,
  NATS_SERVER_RULE,
  PREFIX_PATTERN,
  redactServer,
} from "../protocol/subjects.ts";
import { kindsParam, namespaceParam } from "../sdk/http.ts";
import { positiveDuration } from "../sdk/schema.ts";
import { PEM_CERTIFICATE } from "../protocol/pem.ts";
import { BEARER_TOKEN_PATTERN } from "../protocol/token.ts";
import { baseUrlProblem } from "../client/base-url.ts";

export const TAIL_USAGE = `Usage: bun run main.ts tail --url <url> [options]
       bun run main.ts tail --nats <servers> (--cluster <name> | --prefix <prefix>) [options]

Prints every update of the streams: RESET, the current state as ADDED, SYNCED, then live
changes (after a reset, the changes that bring the state up to date). Ctrl-C stops.

  --url <url>         kubemeta's HTTP base URL (Server-Sent Events), e.g. http://127.0.0.1:8080; credentials in it
                      (https://user:password@host, percent-encoded) go as HTTP Basic auth unless a token is given
  --nats <servers>    NATS server URLs, comma-separated, e.g. nats://nats:4222; credentials in them
                      (nats://user:password@host, nats://token@host) are used unless a token is given
  --cluster <name>    with --nats: the cluster's name (subjects under kubemeta.<cluster>)
  --prefix <prefix>   with --nats: the sink's subject prefix, when it is not the default
  --stream <name>     all (default), shared or node/<node name>; repeat it or give a comma list, each stream once
  --kinds <list>      only these kinds, e.g. Pod,Node
  --namespace <ns>    only objects of this namespace
  --json              one envelope per line on stdout (RESET and SYNCED lines go to stderr)
  --token <token>     bearer token (--url) or NATS token (--nats); default: $KUBEMETA_TOKEN
  --ca <file>         PEM CA that signed the server's certificate (https URL, TLS NATS)
  --idle-timeout <d>  with --url: silence after which the connection is taken for dead and made again, e.g. 90s
                      (default 45s: keep it about three times the sse sink's heartbeat, 15s unless configured)
  --help              this text
`;

/** A bad argument: printed with "(see --help)", exit 2. */
export class UsageError extends Error {}

/** Over SSE, `basic` is the `Authorization` the URL's credentials make (the client refuses them in a url). */
export type Transport = { url: string; basic?: string } | { servers: string[]; prefix?: string; cluster?: string };

export interface TailOptions {
  transport: Transport;
  streams: string[];
  kinds?: Set<string>;
  namespace?: string;
  json: boolean;
  token?: string;
  caFile?: string;
  /** Over SSE: the client library's idleTimeoutMs (its default when undefined). */
  idleTimeoutMs?: number;
}

const TAIL_OPTIONS = {
  url: { type: "string" },
  nats: { type: "string" },
  cluster: { type: "string" },
  prefix: { type: "string" },
  stream: { type: "string", multiple: true },
  kinds: { type: "string" },
  namespace: { type: "string" },
  json: { type: "boolean", default: false },
  token: { type: "string" },
  ca: { type: "string" },
  "idle-timeout": { type: "string" },
  help: { type: "boolean", default: false },
} as const;

/** Each stream once, refused in the client library's words (`--stream all,all`, `--stream all --stream all`). */
const STREAMS_ONCE = v.pipe(v.array(v.string()), eachOnce());

export function parseTailArgs(args: string[], env: Record<string, string | undefined>): TailOptions | "help" {
  let values: ReturnType<typeof parseOptions<typeof TAIL_OPTIONS>>;
  try {
    values = parseOptions(args, TAIL_OPTIONS);
  } catch (error) {
    throw new UsageError(argumentProblem(error));
  }
  if (values.help) return "help";

  const transport = transportOf(values);
  const streams = (values.stream ?? [ALL]).flatMap((list) => list.split(",")).map((s) => s.trim());
  const bad = streams.find((s) => !isStreamName(s));
  if (bad !== undefined) throw new UsageError(`--stream: "${bad}" is not a stream: expected ${STREAM_NAME_RULE}`);
  valid("--stream", STREAMS_ONCE, streams);
  if (values.ca !== undefined && "url" in transport && new URL(transport.url).protocol !== "https:")
    throw new UsageError("--ca: only for an https:// URL");
  const idleTimeout = values["idle-timeout"];
  // Over NATS the client library takes a connection that is already made, whose pings find a dead one.
  if (idleTimeout !== undefined && !("url" in transport)) throw new UsageError("--idle-timeout goes with --url");
  return {
    transport,
    streams,
    kinds: values.kinds === undefined ? undefined : valid("--kinds", kindsParam, values.kinds),
    namespace: values.namespace === undefined ? undefined : valid("--namespace", namespaceParam, values.namespace),
    json: values.json,
    token: tokenOf(values.token, env.KUBEMETA_TOKEN, "url" in transport),
    caFile: values.ca,
    idleTimeoutMs: idleTimeout === undefined ? undefined : idleTimeoutOf(idleTimeout),
  };
}

/**
 * The token given, else $KUBEMETA_TOKEN's. One no `Authorization: Bearer` header can carry would be thrown by the
 * client library as it starts (a stack trace, exit 1); an empty `--token` (`--token "$TOKEN"`, the variable unset)
 * would go without one, or drop the credentials of a NATS URL.
 */
function tokenOf(given: string | undefined, fromEnv: string | undefined, bearer: boolean): string | undefined {
  if (given === "") throw new UsageError("--token: empty (a variable unset?); leave it out to send none");
  // An empty variable is how shells unset one in practice.
  const [token, source] = given === undefined ? [fromEnv || undefined, "$KUBEMETA_TOKEN"] : [given, "--token"];
  if (token !== undefined && bearer && !BEARER_TOKEN_PATTERN.test(token))
    throw new UsageError(`${source}: a bearer token is printable ASCII without spaces`);
  return token;
}

function transportOf(values: { url?: string; nats?: string; cluster?: string; prefix?: string }): Transport {
  const { url, nats, cluster, prefix } = values;
  if ((url === undefined) === (nats === undefined))
    throw new UsageError("give one of --url <kubemeta URL> or --nats <NATS servers>");
  if (url !== undefined) {
    if (cluster !== undefined || prefix !== undefined)
      throw new UsageError("--cluster and --prefix go with --nats, not --url");
    const { base, basic } = splitCredentials(url);
    const problem = baseUrlProblem(base);
    if (problem !== undefined) throw new UsageError(`--url: ${problem}`);
    return basic === undefined ? { url: base } : { url: base, basic };
  }
  if ((cluster === undefined) === (prefix === undefined))
    throw new UsageError("--nats needs one of --cluster <name> or --prefix <subject prefix>");
  // An unset variable (`--cluster "$CLUSTER"`) is no cluster a sink publishes under (a config's name is not empty).
  if (cluster === "") throw new UsageError("--cluster: the cluster's name, not empty");
  if (prefix !== undefined && !PREFIX_PATTERN.test(prefix))
    throw new UsageError(`--prefix: expected dot-separated tokens of letters, digits, _ and -, got "${prefix}"`);
  const inboxes = prefix === undefined ? undefined : inboxPrefixProblem(prefix);
  if (inboxes !== undefined) throw new UsageError(`--prefix: ${inboxes}`);
  const servers = nats!
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (servers.length === 0) throw new UsageError("--nats: expected NATS server URLs");
  const bad = servers.find((server) => !isNatsServer(server));
  if (bad !== undefined)
    throw new UsageError(`--nats: "${redactServer(bad)}" is not a NATS server: expected ${NATS_SERVER_RULE}`);
  if (!credentialsAgree(servers)) throw new UsageError("--nats: the servers' URLs carry different credentials");
  return { servers, cluster, prefix };
}

/**
 * `--idle-timeout`'s milliseconds. A bare 0, as one writes it to turn the check off, is no duration's form either:
 * it is told the rule it breaks, which the list of forms alone does not say.
 */
function idleTimeoutOf(input: string): number {
  if (/^\s*(0+(\.0*)?|\.0+)\s*$/.test(input))
    throw new UsageError(
      '--idle-timeout: must be more than 0 (there is no turning it off), a duration such as "500ms", "10s", "5m", ' +
        '"24h" or "7d"',
    );
  return valid("--idle-timeout", positiveDuration, input);
}

function valid<T extends v.GenericSchema>(flag: string, schema: T, input: unknown): v.InferOutput<T> {
  const result = v.safeParse(schema, input);
  if (!result.success) throw new UsageError(`${flag}: ${result.issues[0].message}`);
  return result.output;
}

export async function readCa(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await Bun.file(file).text();
  } catch (error) {
    throw new UsageError(`--ca: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Taken as it is, every handshake would fail for good ("unable to verify the first certificate"), retried.
  if (!PEM_CERTIFICATE.test(pem)) throw new UsageError(`--ca: ${file} holds no PEM certificate`);
  return pem;
}

/**
 * `user:password@` taken out of a URL, as HTTP Basic credentials (percent-decoded, UTF-8): sent as a header, as a
 * proxy in front of kubemeta asks, which fetch does not do from the URL itself in Node or browsers. A URL without
 * them, or that does not parse, is left to baseUrlProblem.
 */
function splitCredentials(url: string): { base: string; basic?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { base: url };
  }
  if (parsed.username === "" && parsed.password === "") return { base: url };
  let pair: string;
  try {
    pair = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  } catch {
    throw new UsageError("--url: its credentials before @ are not percent-encoded as a URL's are (not quoted)");
  }
  parsed.username = "";
  parsed.password = "";
  return { base: parsed.href, basic: `Basic ${Buffer.from(pair).toString("base64")}` };
}
