/**
 * The NATS sink on this machine, against a real nats-server on a free port:
 *
 * 1. publish throughput: updates committed while NATS is down, then the time the sink
 *    takes to publish all of them (two messages each: `all` and the node subject) once
 *    NATS is up; plus the bare client's publish rate for reference;
 * 2. latency to subscriber at a steady rate of pod changes, with many node subscribers held
 *    by a separate process (so that they do not share the host's event loop), one
 *    subscription per node, plus one on `all`. Measured twice: from the commit (the log
 *    receiving the committed batch: what the sink adds) and from the envelope's `time`
 *    (set when the core numbers the update, before the commit: what the store adds too).
 *
 *   bun bench/nats.ts [--backlog 100000] [--rate 2000] [--seconds 10] [--nodes 5000] [--connections 50]
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { encodeNodeToken } from "../protocol/node-token.ts";
import { rawPod, sinkCaughtUp, startTestHost, type TestHost } from "../testing/index.ts";
import { startNatsServer } from "../tests/nats-server.ts";

const PREFIX = "kubemeta.bench";
const nodeName = (i: number) => `ip-10-0-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    backlog: { type: "string", default: "100000" },
    rate: { type: "string", default: "2000" },
    seconds: { type: "string", default: "10" },
    nodes: { type: "string", default: "5000" },
    connections: { type: "string", default: "50" },
  },
});

if (positionals[0] === "subscribe") await subscriber(positionals[1]!, Number(values.nodes), Number(values.connections));
else await main();

/**
 * Child process: one subscription per node over `connections` connections, plus `all`; reports latencies when told the
 * run is over.
 */
async function subscriber(url: string, nodes: number, connections: number): Promise<void> {
  const ncs = await Promise.all(Array.from({ length: connections }, () => connect({ servers: url })));
  const arrivals: [version: number, arrivedAt: number, sinceNumbered: number][] = [];
  let onAll = 0;
  let misrouted = 0;
  for (let i = 0; i < nodes; i++) {
    const node = nodeName(i);
    ncs[i % connections]!.subscribe(`${PREFIX}.node.${encodeNodeToken(node)}`, {
      callback: (_e, msg) => {
        const envelope = msg.json<Envelope>();
        const now = Date.now();
        arrivals.push([envelope.version, now, now - Date.parse(envelope.time)]);
        if (envelope.node !== node) misrouted++;
      },
    });
  }
  ncs[0]!.subscribe(`${PREFIX}.all`, { callback: () => void onAll++ });
  const control = ncs[0]!.subscribe("bench.control");
  await Promise.all(ncs.map((nc) => nc.flush()));
  process.stdout.write("ready\n");
  for await (const msg of control) {
    const expected = Number(msg.string());
    const deadline = Date.now() + 5_000;
    while (arrivals.length < expected && Date.now() < deadline) await Bun.sleep(20);
    msg.respond(JSON.stringify({ arrivals, onAll, misrouted }));
    break;
  }
  await Promise.all(ncs.map((nc) => nc.close()));
}

function summary(latencies: number[]): string {
  const sorted = latencies.toSorted((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
  return `p50 ${at(50)} ms, p90 ${at(90)} ms, p99 ${at(99)} ms, max ${sorted.at(-1)} ms`;
}

async function main(): Promise<void> {
  const backlog = Number(values.backlog);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const nodes = Number(values.nodes);
  console.log(
    `machine: ${availableParallelism()} CPUs, ${cpus()[0]?.model ?? "unknown CPU"}; Bun ${Bun.version}; ` +
      `load average ${loadavg()[0]!.toFixed(2)} at start`,
  );

  const server = await startNatsServer();
  const th = await startTestHost({
    sinks: [{ type: "nats", servers: [server.url], prefix: PREFIX, reconnect: { initial: "20ms", max: "100ms" } }],
  });
  try {
    await bareClient(server.url);
    await publishThroughput(th, server, backlog, nodes);
    await latency(th, server.url, rate, seconds, nodes);
  } finally {
    await th.destroy();
    await server.destroy();
  }
}

async function bareClient(url: string): Promise<void> {
  const nc = await connect({ servers: url });
  const payload = JSON.stringify({ pad: "x".repeat(420) });
  const count = 200_000;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    nc.publish(`${PREFIX}.raw`, payload);
    if (i % 1000 === 999) await nc.flush();
  }
  await nc.flush();
  const ms = performance.now() - start;
  console.log(
    `bare client publish: ${Math.round((count / ms) * 1000).toLocaleString("en-US")} msgs/s of ${payload.length} B`,
  );
  await nc.close();
}

async function publishThroughput(
  th: TestHost,
  server: Awaited<ReturnType<typeof startNatsServer>>,
  backlog: number,
  nodes: number,
): Promise<void> {
  await server.stop();
  for (let i = 0; i < backlog; i++)
    await th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: nodeName(i % nodes), rv: String(i) }));
  await th.changes.flush();
  const head = th.host.log.head();
  const start = performance.now();
  await server.restart();
  await sinkCaughtUp(th, "nats", 120_000);
  const ms = performance.now() - start;
  const updates = Math.round((head / ms) * 1000);
  console.log(
    `sink catch-up: ${head.toLocaleString("en-US")} updates in ${Math.round(ms)} ms = ` +
      `${updates.toLocaleString("en-US")} updates/s (${(updates * 2).toLocaleString("en-US")} msgs/s), ` +
      "including reconnect",
  );
}

async function latency(th: TestHost, url: string, rate: number, seconds: number, nodes: number): Promise<void> {
  const connections = Number(values.connections);
  const child = Bun.spawn(
    ["bun", import.meta.path, "subscribe", url, "--nodes", String(nodes), "--connections", String(connections)],
    { stdout: "pipe", stderr: "inherit" },
  );
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  if (!new TextDecoder().decode(value).includes("ready")) throw new Error("subscriber process did not start");

  const committedAt = new Map<number, number>();
  const append = th.host.log.append.bind(th.host.log);
  th.host.log.append = (updates) => {
    const now = Date.now();
    for (const update of updates) committedAt.set(update.version, now);
    append(updates);
  };

  const tickMs = 10;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  const ticks = Math.round((seconds * 1000) / tickMs);
  let sent = 0;
  const begin = performance.now();
  for (let t = 0; t < ticks; t++) {
    for (let j = 0; j < perTick; j++, sent++) {
      const i = sent % nodes;
      await th.changes.apply(
        "pods",
        "MODIFIED",
        rawPod(`web-${i}`, { node: nodeName(i), labels: { round: String(sent) }, rv: String(sent) }),
      );
    }
    const next = begin + (t + 1) * tickMs;
    await Bun.sleep(Math.max(0, next - performance.now()));
  }
  await th.changes.flush();
  const elapsed = (performance.now() - begin) / 1000;
  await sinkCaughtUp(th, "nats", 30_000);

  const nc = await connect({ servers: url });
  const reply = await nc.request("bench.control", String(sent), { timeout: 15_000 });
  const { arrivals, onAll, misrouted } = reply.json<{
    arrivals: [number, number, number][];
    onAll: number;
    misrouted: number;
  }>();
  await nc.close();
  await child.exited;
  console.log(
    `latency at ${Math.round(sent / elapsed).toLocaleString("en-US")} updates/s for ${elapsed.toFixed(1)} s, ` +
      `${nodes} node subscribers on ${connections} connections (+1 on all): ` +
      `received ${arrivals.length}/${sent} on node subjects, ${onAll} on all, ${misrouted} misrouted`,
  );
  const sinceCommit = arrivals.map(([version, arrivedAt]) => arrivedAt - committedAt.get(version)!);
  console.log(`  commit → subscriber:   ${summary(sinceCommit)}`);
  console.log(`  numbered → subscriber: ${summary(arrivals.map(([, , sinceNumbered]) => sinceNumbered))}`);
  console.log(
    `  numbered → committed:  ${summary(arrivals.map(([, , sinceNumbered], i) => sinceNumbered - sinceCommit[i]!))} ` +
      "(the core and the store)",
  );
}
