/**
 * `bun run main.ts tail`: follows streams from a terminal through the client library, over
 * SSE or NATS, and prints what its callbacks report: readable aligned lines, or the
 * envelopes as JSON lines for jq and friends.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { subscribeNats, subscribeSse, type Subscription } from "../client/index.ts";
import { connect } from "../plugins/sinks/nats/connect.ts";
import { natsServerOptions, redactServer } from "../protocol/subjects.ts";
import { clearTextHost } from "../protocol/clear-text.ts";
import { parseTailArgs, readCa, TAIL_USAGE, UsageError, type TailOptions } from "./tail-args.ts";
import { printable, printer } from "./tail-lines.ts";
import { watchReaders } from "./reader-gone.ts";

/**
 * Runs `tail` with the arguments after it; resolves to the exit code. `stop` resolves at Ctrl-C or SIGTERM (listened
 * for since the process began, main.ts): a normal end, exit 0, whenever it comes.
 */
export async function runTail(args: string[], stop: Promise<void>): Promise<number> {
  const fail = (message: string, code: number) => {
    process.stderr.write(`${printable(`kubemeta tail: ${message}`)}\n`);
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
  // At once, without waiting for a write that fails: on a quiet stream the next one may be hours away.
  const unwatch = watchReaders([1, 2], (fd) => {
    gone[fd === 1 ? "stdout" : "stderr"] = true;
    done.resolve(0);
  });
  void done.promise.then(unwatch);
  const err = (line: string) => gone.stderr || process.stderr.write(`${printable(line)}\n`);
  // Lines stdout could not take (a reader slower than the stream, or none) are held in memory until it drains: nothing
  // more is taken meanwhile (over SSE the server's bound applies, OVERFLOW then a resume; over NATS a replay after).
  let backlog: Promise<void> | undefined;
  const out = (line: string) => {
    if (gone.stdout || process.stdout.write(`${printable(line)}\n`) || backlog) return;
    const drained = Promise.withResolvers<void>();
    backlog = drained.promise;
    process.stdout.once("drain", () => {
      backlog = undefined;
      drained.resolve();
    });
  };
  const handlers = printer(options, out, err);

  // Before a first NATS connection too: one that hangs is given up on at Ctrl-C, and that is a normal end as well.
  void stop.then(() => done.resolve(0));
  const { transport, streams, kinds, namespace, token, idleTimeoutMs } = options;
  let nc: NatsConnection | undefined;
  let stopping = false;
  let subscription: Subscription;
  if ("url" in transport) {
    const host = clearTextHost(transport.url);
    const sent = token !== undefined ? "the token" : transport.basic !== undefined ? "the url's user and password" : "";
    // A warning, not a refusal, as kubemeta's own (README, "HTTP"): a tunnel on the way may encrypt it.
    if (host !== undefined && sent)
      err(`kubemeta tail: warning: ${sent} sent to ${host} over http://, unencrypted: anyone on the path reads it`);
    // Typed as Bun's own: the client library takes any RequestInit, which knows no `tls`.
    const fetchInit: BunFetchRequestInit | undefined = ca === undefined ? undefined : { tls: { ca } };
    subscription = subscribeSse({
      url: transport.url,
      streams,
      kinds: kinds && [...kinds],
      namespace,
      token,
      // The URL's credentials, unless a token is given (as over NATS).
      ...(transport.basic !== undefined && token === undefined ? { headers: { Authorization: transport.basic } } : {}),
      fetchInit,
      idleTimeoutMs,
      paused: () => backlog,
      ...handlers,
    });
  } else {
    const connecting = connect({
      token,
      // The URLs' credentials, unless a token is given.
      ...natsServerOptions(transport.servers, token !== undefined),
      ...(ca === undefined ? {} : { tls: { ca } }),
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
    const { prefix, cluster } = transport;
    subscription = subscribeNats({ nc, prefix, cluster, streams, paused: () => backlog, ...handlers });
  }

  const code = await done.promise;
  stopping = true;
  await subscription.stop();
  await nc?.close();
  return code;
}

/** The client library reports what fails, not a connection that comes and goes: a silent tail would look stuck. */
async function reportConnection(nc: NatsConnection, err: (line: string) => void): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === "disconnect") err(`kubemeta tail: NATS: disconnected from ${status.server}; reconnecting`);
    else if (status.type === "reconnect") err(`kubemeta tail: NATS: reconnected to ${status.server}`);
  }
}
