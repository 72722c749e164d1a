/** A real webhook receiver on 127.0.0.1 (Bun.serve) that records every request and answers as the test says. */
import { afterEach } from "bun:test";
import type { Envelope } from "../protocol/envelope.ts";
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";

export interface WebhookBody {
  id: string;
  cluster: string;
  epoch: string;
  stream: string;
  first: number;
  last: number;
  updates: Envelope[];
}

export interface Received {
  raw: string;
  body: WebhookBody;
  headers: Headers;
  at: number;
  /** The status the receiver answered; 0 while it has not answered. */
  status: number;
}

export type Responder = (request: Received) => Response | Promise<Response>;

export interface Receiver {
  url: string;
  /** Every request, in arrival order. */
  requests: Received[];
  /** Requests answered 2xx, in arrival order. */
  accepted(): Received[];
  /** How the next requests are answered (200 by default). */
  respond: Responder;
  /** Takes the receiver down: connections are refused until `start`. */
  stop(): Promise<void>;
  /** Listens again, on the same port. */
  start(): Promise<void>;
}

export async function startReceiver(respond: Responder = () => new Response("ok")): Promise<Receiver> {
  let server: ReturnType<typeof Bun.serve> | undefined;
  let port = 0;
  const receiver: Receiver = {
    url: "",
    requests: [],
    accepted: () => receiver.requests.filter((r) => r.status >= 200 && r.status < 300),
    respond,
    async stop() {
      await server?.stop(true);
      server = undefined;
    },
    async start() {
      server = Bun.serve({
        hostname: "127.0.0.1",
        port,
        fetch: async (request) => {
          const raw = await request.text();
          const received: Received = {
            raw,
            body: JSON.parse(raw) as WebhookBody,
            headers: request.headers,
            at: Date.now(),
            status: 0,
          };
          receiver.requests.push(received);
          const response = await receiver.respond(received);
          received.status = response.status;
          return response;
        },
      });
      port = server.port!;
      receiver.url = `http://127.0.0.1:${port}/hook`;
    },
  };
  await receiver.start();
  return receiver;
}

/** A test's host and receiver, as it starts (or restarts) them. */
export interface HostAndReceiver {
  host?: TestHost;
  receiver?: Receiver;
}

/** A test file's host and receiver, stopped after each test whatever it left running. */
export function hostAndReceiverPerTest(): HostAndReceiver {
  const run: HostAndReceiver = {};
  afterEach(async () => {
    await run.host?.destroy();
    await run.receiver?.stop();
    run.host = run.receiver = undefined;
  });
  return run;
}

/**
 * What a de-duplicating receiver keeps, given the accepted requests in arrival order:
 * each update whose version is above the highest kept so far. Throws on a gap, so an
 * equality with 1..n proves "in order, none missing" for an unfiltered stream.
 */
export function deduplicated(accepted: Received[]): number[] {
  const kept: number[] = [];
  for (const request of accepted) {
    for (const update of request.body.updates) {
      const last = kept[kept.length - 1] ?? 0;
      if (update.version <= last) continue;
      if (update.version !== last + 1) throw new Error(`gap: version ${update.version} after ${last}`);
      kept.push(update.version);
    }
  }
  return kept;
}

export const SECRET = "test-secret-0123456789";

/**
 * A webhook sink entry with a short linger and fast retries, for tests; `batch` and `retry` in `extra` are merged into
 * those.
 */
export function webhookSink(
  url: string,
  extra: { batch?: object; retry?: object; [key: string]: unknown } = {},
): Record<string, unknown> {
  const { batch, retry, ...rest } = extra;
  return {
    type: "webhook",
    url,
    secret: SECRET,
    timeout: "2s",
    batch: { linger: "20ms", ...batch },
    retry: { initial: "10ms", max: "100ms", ...retry },
    ...rest,
  };
}

/** A counter's value on the test host. */
export const counter = (th: TestHost, name: string, labels: Record<string, string>) =>
  th.host.metrics.counter(name, "").get(labels);

/** 1..n: the versions of an unfiltered stream's first n updates. */
export const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Starts `run.host` with the webhook sink `sink`; its log lines, parsed, as they are written. */
export async function hostLogging(
  run: HostAndReceiver,
  sink: Record<string, unknown>,
): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  run.host = await startTestHost({ logger, sinks: [sink] });
  return lines;
}

/** Applies a pod on `run.host` and returns the first delivery failure its sink logs. */
export async function firstFailure(
  run: HostAndReceiver,
  lines: Record<string, unknown>[],
): Promise<Record<string, unknown>> {
  run.host!.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  return waitFor(
    () => lines.find((line) => line.msg === "webhook delivery failed; retrying"),
    5_000,
    "the failure logged",
  );
}

/** The names of the updates the receiver accepted, in arrival order. */
export const acceptedNames = (r: Receiver) =>
  r.accepted().flatMap((request) => request.body.updates.map((u) => u.name));
