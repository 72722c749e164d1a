/**
 * The NATS sink's `deliver`: publishes one batch of envelopes that `consume` (fanOut,
 * following `all`) hands it, and resolves once the server has them.
 *
 * Each update comes as its `all` envelope, then as its envelope on its own stream, each
 * with that stream's `prev`; each goes to its stream's subject with the header
 * `Nats-Msg-Id: <epoch>:<version>`. The id is the same on both subjects: a JetStream
 * stream bound to all of them keeps each update once (the `all` copy, published first),
 * and one that sees a re-publication after a reconnect drops it.
 *
 * A batch counts as published once a flush (a PING/PONG round trip behind it) returns on
 * the same connection generation; otherwise `deliver` throws, and `consume` publishes the
 * batch again once NATS is back. Consumers may see an update twice (they drop versions
 * they hold) but never miss one.
 */
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import type { Envelope, SinkContext } from "../../../sdk/index.ts";
import { jsonText } from "../../../sdk/model.ts";
import type { Subjects } from "../../../protocol/subjects.ts";
import type { Connection } from "./connection.ts";
import { largestEnvelope } from "./chunks.ts";
import { rateLimited } from "../../../sdk/telemetry.ts";

const MSG_ID_HEADER = "Nats-Msg-Id";
/** Why an update is not published on a subject: too large for it, or its node's name makes no subject. */
const SKIP_REASONS = ["oversized", "illegal_node_name"] as const;

export interface PublisherOptions {
  ctx: SinkContext;
  subjects: Subjects;
  /** Resolves with the current connection once it is connected; throws when `signal` aborts first. */
  connected(signal: AbortSignal): Promise<Connection>;
}

export type Publish = (envelopes: Envelope[], signal: AbortSignal) => Promise<void>;

/**
 * A batch (or a replay's reply) the server may not have: the connection dropped before it confirmed it. Expected
 * whenever NATS restarts under one; a batch is published again once the connection is back, a reply asked again.
 */
export class ConnectionDropped extends Error {
  constructor(cause?: unknown) {
    super("the NATS connection dropped (or the sink stopped) before the server confirmed the batch", { cause });
    this.name = "ConnectionDropped";
  }
}

export function createPublisher(options: PublisherOptions): Publish {
  const { ctx, subjects } = options;
  const { log, logger } = ctx;
  const labels = { sink: ctx.name };
  const published = ctx.metrics.counter("kubemeta_nats_published_total", "Messages published to NATS, by sink.");
  const skipped = ctx.metrics.counter(
    "kubemeta_nats_skipped_total",
    `Updates not published on a subject, by sink and reason (${SKIP_REASONS.join(", ")}).`,
  );
  // 0 from the start, as every counter of rare events: increase() needs a sample before the first skip.
  for (const reason of SKIP_REASONS) skipped.inc({ ...labels, reason }, 0);

  const encoder = new TextEncoder();
  // Each such update is skipped on both its subjects, and a large object that keeps changing is skipped each time.
  const notPublished = rateLimited(logger, "error");

  /**
   * `largest`: what a replay chunk could carry back. It leaves more room than the Nats-Msg-Id header takes, so the
   * client's own max_payload check never refuses what passes it.
   */
  function publishOne(nc: NatsConnection, subject: string, envelope: Envelope, id: MsgHdrs, largest: number): void {
    const data = encoder.encode(jsonText(envelope));
    if (data.length <= largest) {
      nc.publish(subject, data, { headers: id });
      published.inc(labels);
      return;
    }
    skipped.inc({ ...labels, reason: "oversized" });
    notPublished("update exceeds the server's max_payload, or leaves no room for a replay chunk; not published", {
      subject,
      version: envelope.version,
      kind: envelope.kind,
      name: envelope.name,
    });
  }

  function publishAll(nc: NatsConnection, envelopes: Envelope[]): void {
    const largest = largestEnvelope(log.epoch, nc.info?.max_payload ?? Number.POSITIVE_INFINITY);
    // Both copies of an update are next to each other: they share one header object.
    let id: MsgHdrs | undefined;
    let idVersion = 0;
    for (const envelope of envelopes) {
      if (!id || envelope.version !== idVersion) {
        id = headers();
        id.set(MSG_ID_HEADER, `${log.epoch}:${envelope.version}`);
        idVersion = envelope.version;
      }
      const subject = subjects.of(envelope.stream);
      if (subject) publishOne(nc, subject, envelope, id, largest);
      else skipped.inc({ ...labels, reason: "illegal_node_name" });
    }
  }

  return async (envelopes, signal) => {
    const connection = await options.connected(signal);
    const generation = connection.generation();
    // Taken before publishing: a disconnect from here on aborts it, and the flush below with it.
    const session = connection.session();
    publishAll(connection.nc, envelopes);
    await confirmed(connection.nc, [signal, session]);
    if (connection.generation() !== generation) throw new ConnectionDropped();
  };
}

/**
 * Resolves once the server answered a PING sent behind what was published, and throws as
 * soon as one of `signals` aborts: a flush pending over a disconnect may hang until the
 * reconnect, and proves nothing then. The client may also fail the flush itself at the
 * disconnect, before the session ends ("connection disconnected"): the same drop.
 */
export async function confirmed(nc: NatsConnection, signals: AbortSignal[] = []): Promise<void> {
  const interrupted = Promise.withResolvers<never>();
  const interrupt = () => interrupted.reject(new ConnectionDropped());
  for (const signal of signals) signal.addEventListener("abort", interrupt, { once: true });
  try {
    if (signals.some((signal) => signal.aborted)) interrupt();
    await Promise.race([
      nc.flush().catch((error: unknown) => {
        throw new ConnectionDropped(error);
      }),
      interrupted.promise,
    ]);
  } finally {
    for (const signal of signals) signal.removeEventListener("abort", interrupt);
  }
}
