/**
 * `bun run main.ts tail`: follows streams from a terminal through the client library, over
 * SSE or NATS, and prints what its callbacks report: readable aligned lines, or the
 * envelopes as JSON lines for jq and friends.
 */
import { parseArgs } from "node:util";
import { argumentProblem } from "./args.ts";
import * as v from "valibot";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  subscribeNats,
  subscribeSse,
  type Envelope,
  type InformerHandlers,
  type ResetInfo,
  type Subscription,
  type SyncedInfo,
} from "../client/index.ts";
import { ALL, isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";
import {
  credentialsAgree,
  isNatsServer,
  NATS_SERVER_RULE,
  natsServerOptions,
  PREFIX_PATTERN,
  redactServer,
} from "../protocol/subjects.ts";
import { kindsParam, namespaceParam } from "../sdk/http.ts";

const TAIL_USAGE = `Usage: bun run main.ts tail --url <url> [options]
       bun run main.ts tail --nats <servers> (--cluster <name> | --prefix <prefix>) [options]

Prints every update of the streams: RESET, the current state as ADDED, SYNCED, then live
changes (after a reset, the changes that bring the state up to date). Ctrl-C stops.

  --url <url>         kubemeta's HTTP base URL (Server-Sent Events), e.g. http://127.0.0.1:8080
  --nats <servers>    NATS server URLs, comma-separated, e.g. nats://nats:4222; credentials in them
                      (nats://user:password@host, nats://token@host) are used unless a token is given
  --cluster <name>    with --nats: the cluster's name (subjects under kubemeta.<cluster>)
  --prefix <prefix>   with --nats: the sink's subject prefix, when it is not the default
  --stream <name>     all (default), shared or node/<node name>; repeat it or give a comma list
  --kinds <list>      only these kinds, e.g. Pod,Node
  --namespace <ns>    only objects of this namespace
  --json              one envelope per line on stdout (RESET and SYNCED lines go to stderr)
  --token <token>     bearer token (--url) or NATS token (--nats); default: $KUBEMETA_TOKEN
  --ca <file>         PEM CA that signed the server's certificate (https URL, TLS NATS)
  --help              this text
`;

class UsageError extends Error {}

type Transport = { url: string } | { servers: string[]; prefix?: string; cluster?: string };

interface TailOptions {
  transport: Transport;
  streams: string[];
  kinds?: Set<string>;
  namespace?: string;
  json: boolean;
  token?: string;
  caFile?: string;
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
  help: { type: "boolean", default: false },
} as const;

function parseTailArgs(args: string[], env: Record<string, string | undefined>): TailOptions | "help" {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof TAIL_OPTIONS; strict: true }>>;
  try {
    parsed = parseArgs({ args, options: TAIL_OPTIONS, strict: true });
  } catch (error) {
    throw new UsageError(argumentProblem(error));
  }
  const { values } = parsed;
  if (values.help) return "help";

  const transport = transportOf(values);
  const streams = (values.stream ?? [ALL]).flatMap((list) => list.split(",")).map((s) => s.trim());
  const bad = streams.find((s) => !isStreamName(s));
  if (bad !== undefined) throw new UsageError(`--stream: "${bad}" is not a stream: expected ${STREAM_NAME_RULE}`);
  if (values.ca !== undefined && "url" in transport && !transport.url.startsWith("https:"))
    throw new UsageError("--ca: only for an https:// URL");
  return {
    transport,
    streams,
    kinds: values.kinds === undefined ? undefined : valid("--kinds", kindsParam, values.kinds),
    namespace: values.namespace === undefined ? undefined : valid("--namespace", namespaceParam, values.namespace),
    json: values.json,
    // An empty variable is how shells unset one in practice.
    token: values.token ?? (env.KUBEMETA_TOKEN || undefined),
    caFile: values.ca,
  };
}

function transportOf(values: { url?: string; nats?: string; cluster?: string; prefix?: string }): Transport {
  const { url, nats, cluster, prefix } = values;
  if ((url === undefined) === (nats === undefined))
    throw new UsageError("give one of --url <kubemeta URL> or --nats <NATS servers>");
  if (url !== undefined) {
    if (cluster !== undefined || prefix !== undefined)
      throw new UsageError("--cluster and --prefix go with --nats, not --url");
    let protocol: string | undefined;
    try {
      protocol = new URL(url).protocol;
    } catch {
      // Reported below, with what was expected.
    }
    if (protocol !== "http:" && protocol !== "https:")
      throw new UsageError(`--url: expected an http:// or https:// URL, got "${url}"`);
    return { url };
  }
  if ((cluster === undefined) === (prefix === undefined))
    throw new UsageError("--nats needs one of --cluster <name> or --prefix <subject prefix>");
  if (prefix !== undefined && !PREFIX_PATTERN.test(prefix))
    throw new UsageError(`--prefix: expected dot-separated tokens of letters, digits, _ and -, got "${prefix}"`);
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

function valid<T extends v.GenericSchema>(flag: string, schema: T, text: string): v.InferOutput<T> {
  const result = v.safeParse(schema, text);
  if (!result.success) throw new UsageError(`${flag}: ${result.issues[0].message}`);
  return result.output;
}

/** Right-aligned versions and fixed type and kind columns keep a scrolling tail readable. */
function columns(version: string, label: string, rest: string): string {
  return `${version.padStart(8)} ${label.padEnd(8)} ${rest}`.trimEnd();
}

function updateLine(envelope: Envelope, note: string, manyStreams: boolean): string {
  const ref = envelope.namespace ? `${envelope.namespace}/${envelope.name}` : envelope.name;
  // A Node's node is itself.
  const node = envelope.node && envelope.kind !== "Node" ? `node=${envelope.node}` : "";
  const stream = manyStreams ? `[${envelope.stream}]` : "";
  const rest = [envelope.kind.padEnd(13), ref.padEnd(40), node, stream, note].filter(Boolean).join("  ");
  return columns(String(envelope.version), envelope.type, rest);
}

function resetLine({ stream, epoch, previousEpoch, reason }: ResetInfo): string {
  const was = previousEpoch && previousEpoch !== epoch ? `  was=${previousEpoch}` : "";
  return columns("-", "RESET", `${stream}  reason=${reason}  epoch=${epoch}${was}`);
}

function syncedLine({ stream, epoch, version }: SyncedInfo): string {
  return columns(String(version), "SYNCED", `${stream}  epoch=${epoch}`);
}

/** The callbacks that print: `out` and `err` take lines without their newline. */
function printer(options: TailOptions, out: (line: string) => void, err: (line: string) => void): InformerHandlers {
  const manyStreams = new Set(options.streams).size > 1;
  const status = options.json ? err : out;
  const print = (envelope: Envelope, note = "") =>
    out(options.json ? JSON.stringify(envelope) : updateLine(envelope, note, manyStreams));
  // Over SSE the server filters; over NATS every update of the stream arrives.
  const { kinds, namespace } = options;
  const wanted = (e: Envelope) =>
    (!kinds || kinds.has(e.kind)) && (namespace === undefined || e.namespace === namespace);
  return {
    onAdd: (e) => wanted(e) && print(e),
    onUpdate(_old, e) {
      if (!wanted(e)) return;
      // An object changed across a reset comes as its snapshot envelope, an ADDED: printed as it is, it would read as
      // new.
      if (e.type === "ADDED") print({ ...e, type: "MODIFIED" }, "(changed at reset)");
      else print(e);
    },
    onDelete(e) {
      if (!wanted(e)) return;
      // An object found gone at a reset comes as the last envelope held: printed as it is, it would read as still
      // there.
      if (e.type === "DELETED") print(e);
      else print({ ...e, type: "DELETED" }, "(gone at reset)");
    },
    onReset: (info) => status(resetLine(info)),
    onSynced: (info) => status(syncedLine(info)),
    onError: (error, stream) => err(`kubemeta tail: ${stream}: ${error.message}`),
  };
}

/**
 * Runs `tail` with the arguments after it; resolves to the exit code. `stop` resolves at Ctrl-C or SIGTERM (listened
 * for since the process began, main.ts): a normal end, exit 0, whenever it comes.
 */
export async function runTail(args: string[], stop: Promise<void>): Promise<number> {
  const fail = (message: string, code: number) => {
    process.stderr.write(`kubemeta tail: ${message}\n`);
    return code;
  };
  let options: TailOptions | "help";
  let ca: string | undefined;
  try {
    options = parseTailArgs(args, process.env);
    if (options !== "help" && options.caFile !== undefined) ca = await readCa(options.caFile);
  } catch (error) {
    if (error instanceof UsageError) return fail(`${error.message} (see --help)`, 2);
    throw error;
  }
  if (options === "help") {
    process.stdout.write(TAIL_USAGE);
    return 0;
  }

  const done = Promise.withResolvers<number>();
  // A reader that went away (`| head`, or `2>&1 | head` while only errors come) is a normal end; anything else is
  // worth a word, where one can still go.
  const gone = { stdout: false, stderr: false };
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    gone.stdout = true;
    done.resolve(error.code === "EPIPE" ? 0 : fail(`stdout: ${error.message}`, 1));
  });
  process.stderr.on("error", (error: NodeJS.ErrnoException) => {
    gone.stderr = true;
    done.resolve(error.code === "EPIPE" ? 0 : 1);
  });
  const err = (line: string) => gone.stderr || process.stderr.write(`${line}\n`);
  const handlers = printer(options, (line) => gone.stdout || process.stdout.write(`${line}\n`), err);

  // Before a first NATS connection too: one that hangs is given up on at Ctrl-C, and that is a normal end as well.
  void stop.then(() => done.resolve(0));
  const { transport, streams, kinds, namespace, token } = options;
  let nc: NatsConnection | undefined;
  let stopping = false;
  let subscription: Subscription;
  if ("url" in transport) {
    // Typed as Bun's own: the client library takes any RequestInit, which knows no `tls`.
    const fetchInit: BunFetchRequestInit | undefined = ca === undefined ? undefined : { tls: { ca } };
    subscription = subscribeSse({
      url: transport.url,
      streams,
      kinds: kinds && [...kinds],
      namespace,
      token,
      fetchInit,
      ...handlers,
    });
  } else {
    const connecting = connect({
      token,
      // The URLs' credentials, unless a token is given.
      ...natsServerOptions(transport.servers, token !== undefined),
      tls: ca === undefined ? undefined : { ca },
      name: "kubemeta-tail",
      maxReconnectAttempts: -1,
    });
    try {
      nc = await Promise.race([connecting, done.promise.then(() => undefined)]);
    } catch (error) {
      done.resolve(
        fail(
          `cannot connect to NATS at ${transport.servers.map(redactServer).join(", ")}: ` +
            `${error instanceof Error ? error.message : String(error)}`,
          1,
        ),
      );
    }
    if (!nc) {
      // A connection that still comes is closed at once; the process is ending anyway.
      void connecting.then((late) => late.close()).catch(() => {});
      return done.promise;
    }
    void reportConnection(nc, err);
    // Reconnecting forever, it closes by itself only on an error it cannot get past.
    void nc
      .closed()
      .then((error) => stopping || done.resolve(fail(`NATS connection closed${error ? `: ${error.message}` : ""}`, 1)));
    subscription = subscribeNats({ nc, prefix: transport.prefix, cluster: transport.cluster, streams, ...handlers });
  }

  const code = await done.promise;
  stopping = true;
  await subscription.stop();
  await nc?.close();
  return code;
}

async function readCa(file: string): Promise<string> {
  try {
    return await Bun.file(file).text();
  } catch (error) {
    throw new UsageError(`--ca: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The client library reports what fails, not a connection that comes and goes: a silent tail would look stuck. */
async function reportConnection(nc: NatsConnection, err: (line: string) => void): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === "disconnect") err(`kubemeta tail: NATS: disconnected from ${status.server}; reconnecting`);
    else if (status.type === "reconnect") err(`kubemeta tail: NATS: reconnected to ${status.server}`);
  }
}
