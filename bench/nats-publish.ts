/**
 * What publishing costs in the NATS client kubemeta uses, alone: each update is two messages (its `all` subject and
 * its node's), real-size slim pods (~1.3 KB envelopes) with the `Nats-Msg-Id` header, to a real nats-server, flushed
 * every 1,000 updates as the sink's batches are. Beside it, the header encoded once an update instead of by the client
 * for each message, the messages without the header, the same frames pushed into the client's outbound buffer by hand
 * (its protocol handler, not public API: a floor for what the client's own publish adds), and building and encoding
 * the texts alone (what kubemeta's side of it costs).
 * CPU is this process's (every thread), per message; the variants run interleaved, `rounds` times.
 *
 *   bun bench/nats-publish.ts [rounds]   (default 5)
 */
import { connect, headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { slim } from "../core/slim.ts";
import { makePod } from "../simulator/pods.ts";
import { startNatsServer } from "../tests/nats-server.ts";
import { machine } from "./processes.ts";

const rounds = Number(process.argv[2] ?? 5);
const UPDATES = 50_000;
const BATCH = 1_000;
const PREFIX = "kubemeta.bench";
const encoder = new TextEncoder();

const objects = Array.from({ length: 100 }, (_, i) =>
  JSON.stringify(
    slim(
      "Pod",
      makePod({
        name: `api-${i}-7d9f8c6b5-x2x9q`,
        namespace: "payments",
        node: `ip-10-0-${i % 20}-${i}.eu-west-1.compute.internal`,
        owner: { kind: "ReplicaSet", name: "api-7d9f8c6b5", uid: crypto.randomUUID() },
      }),
    ),
  ),
);
const node = "ip-10-0-1-23_eu-west-1_compute_internal";
const envelope = (version: number, stream: string, subject: string) =>
  `{"epoch":"0f3c2a1e","version":${version},"prev":${version - 1},"type":"MODIFIED","stream":"${stream}",` +
  `"subject":"${subject}","object":${objects[version % objects.length]}}`;

/** One header object for both messages of an update, as nats/publisher.ts shares it; `make` builds it. */
function perUpdate(make: (version: number) => MsgHdrs): (version: number) => MsgHdrs {
  let cached = { version: 0, header: undefined as MsgHdrs | undefined };
  return (version) => {
    if (cached.version !== version) cached = { version, header: make(version) };
    return cached.header!;
  };
}
const sinkHeader = perUpdate((version) => {
  const id = headers();
  id.set("Nats-Msg-Id", `0f3c2a1e:${version}`);
  return id;
});
/** The same header as the client writes it, encoded once for both messages (the client only calls its encode()). */
const encodedHeader = perUpdate((version) => {
  const bytes = encoder.encode(`NATS/1.0\r\nNats-Msg-Id: 0f3c2a1e:${version}\r\n\r\n`);
  return { encode: () => bytes } as unknown as MsgHdrs;
});

type Publish = (nc: NatsConnection, subject: string, text: string, version: number) => number;
interface Protocol {
  sendCommand(cmd: Uint8Array): void;
}

const variants: Record<string, Publish> = {
  "as the sink publishes (header)": (nc, subject, text, version) => {
    const data = encoder.encode(text);
    nc.publish(subject, data, { headers: sinkHeader(version) });
    return data.length;
  },
  "header encoded once an update": (nc, subject, text, version) => {
    const data = encoder.encode(text);
    nc.publish(subject, data, { headers: encodedHeader(version) });
    return data.length;
  },
  "without the header": (nc, subject, text) => {
    const data = encoder.encode(text);
    nc.publish(subject, data);
    return data.length;
  },
  "frames by hand (floor)": (nc, subject, text, version) => {
    const header = `NATS/1.0\r\nNats-Msg-Id: 0f3c2a1e:${version}\r\n\r\n`;
    const body = encoder.encode(text);
    const frame = encoder.encode(`HPUB ${subject} ${header.length} ${header.length + body.length}\r\n${header}`);
    (nc as unknown as { protocol: Protocol }).protocol.sendCommand(frame);
    (nc as unknown as { protocol: Protocol }).protocol.sendCommand(body);
    (nc as unknown as { protocol: Protocol }).protocol.sendCommand(encoder.encode("\r\n"));
    return body.length;
  },
  "texts encoded, nothing published": (_nc, _subject, text) => encoder.encode(text).length,
};

async function measure(nc: NatsConnection, publish: Publish) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let bytes = 0;
  for (let version = 1; version <= UPDATES; version++) {
    for (const [stream, subject] of [
      ["all", `${PREFIX}.all`],
      [`node/${node}`, `${PREFIX}.node.${node}`],
    ] as const)
      bytes += publish(nc, subject, envelope(version, stream, subject), version);
    if (version % BATCH === 0) await nc.flush();
  }
  await nc.flush();
  const used = process.cpuUsage(cpu);
  return { cpuUs: used.user + used.system, ms: performance.now() - started, bytes };
}

console.log(machine());
const server = await startNatsServer();
const nc = await connect({ servers: server.url });
try {
  const results = new Map<string, { cpuUs: number; ms: number; bytes: number }[]>();
  for (let round = 0; round < rounds; round++)
    for (const [name, publish] of Object.entries(variants))
      results.set(name, [...(results.get(name) ?? []), await measure(nc, publish)]);
  const messages = UPDATES * 2;
  console.log(
    `${UPDATES.toLocaleString()} updates, ${messages.toLocaleString()} messages a round; medians of ${rounds}:`,
  );
  for (const [name, runs] of results) {
    const median = (pick: (r: { cpuUs: number; ms: number; bytes: number }) => number) =>
      runs.map(pick).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
    const cpuPerMessage = median((r) => r.cpuUs) / messages;
    const rate = messages / (median((r) => r.ms) / 1000);
    const mb = median((r) => r.bytes) / 1e6;
    console.log(
      `  ${name.padEnd(34)} ${cpuPerMessage.toFixed(2)} µs CPU a message, ${Math.round(rate).toLocaleString()} ` +
        `messages/s, ${mb.toFixed(0)} MB of envelopes (${Math.round((mb * 1e6) / messages)} B each)`,
    );
  }
} finally {
  await nc.close();
  await server.destroy();
}
