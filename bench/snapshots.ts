/**
 * Ten concurrent resets of `all`: the peak RSS they add to kubemeta, and the bytes they move. Each SSE subscriber
 * without a resume point gets RESET and the whole state; then as many `GET /v1/objects` at once; then as many NATS
 * replay requests without a position (a reset each, on a real nats-server). Snapshots are read from the store a page
 * at a time as each client takes them (issue 9's target: ≤ 200 MiB added at 150,000 pods).
 *
 *   bun bench/snapshots.ts [--pods 150000] [--nodes 5000] [--clients 10] [--pause-ms 0]
 *   BUN_JSC_forceRAMSize=1610612736 bun bench/snapshots.ts     # the GC sized as deploy/ sizes it (1.5 GiB limit)
 *
 * The state is real-size simulator pods (simulator/pods.ts; slimmed by the core as in production) committed to
 * a libSQL file. The clients live in a child process, so their buffers are not in the measured RSS; `--pause-ms`
 * makes each HTTP client pause after every chunk it reads, as slow subscribers do. RSS is sampled every 20 ms.
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { makePod } from "../simulator/pods.ts";
import { makeNode, nodeName } from "../simulator/nodes.ts";
import { sinkCaughtUp, startTestHost, type TestHost } from "../testing/index.ts";
import { startNatsServer } from "../tests/nats-server.ts";
import { defaultPrefix, subjectsFor } from "../protocol/subjects.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    pods: { type: "string", default: "150000" },
    nodes: { type: "string", default: "5000" },
    clients: { type: "string", default: "10" },
    "pause-ms": { type: "string", default: "0" },
  },
});

interface Report {
  bytes: number;
  complete: number;
}

if (positionals[0] === "read") await readAll(positionals[1]!, Number(values.clients), Number(values["pause-ms"]));
else if (positionals[0] === "replay") await replayAll(positionals[1]!, positionals[2]!, Number(values.clients));
else await main();

/** A child's answer to the parent: the bytes its clients took, and how many of them got to the end. */
function printReport(results: [bytes: number, complete: boolean][]): void {
  const report: Report = {
    bytes: results.reduce((sum, [bytes]) => sum + bytes, 0),
    complete: results.filter(([, complete]) => complete).length,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Child process: `count` replay requests for `all` without a position at once, each to its last chunk; a Report. */
async function replayAll(server: string, subject: string, count: number): Promise<void> {
  const nc = await connect({ servers: server });
  const one = (n: number) =>
    new Promise<[number, boolean]>((resolve) => {
      let bytes = 0;
      const inbox = `bench.snapshots.${n}`;
      const decoder = new TextDecoder();
      nc.subscribe(inbox, {
        callback(_, msg) {
          bytes += msg.data.length;
          // The last chunk ends with `"last":true,"through":<version>}`, an error too (`"error":…,"last":true}`).
          const tail = decoder.decode(msg.data.subarray(-80));
          if (tail.includes('"last":true')) resolve([bytes, !tail.includes('"error"')]);
        },
      });
      nc.publish(subject, JSON.stringify({ stream: "all" }), { reply: inbox });
    });
  const results = await Promise.all(Array.from({ length: count }, (_, n) => one(n)));
  await nc.close();
  printReport(results);
}

/** Child process: `count` clients read `url` at once, each to its SYNCED event (SSE) or its end; prints a Report. */
async function readAll(url: string, count: number, pauseMs: number): Promise<void> {
  const sse = url.includes("/v1/watch");
  const one = async (): Promise<[number, boolean]> => {
    const response = await fetch(url);
    const decoder = new TextDecoder();
    let bytes = 0;
    let tail = "";
    for await (const chunk of response.body!) {
      bytes += chunk.byteLength;
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
      if (sse && /event: SYNCED\n[^\n]*\n\n/.test(tail)) return [bytes, true];
      if (pauseMs > 0) await Bun.sleep(pauseMs);
    }
    return [bytes, !sse && tail.endsWith("]}")];
  };
  const results = await Promise.all(Array.from({ length: count }, one));
  printReport(results);
}

async function main(): Promise<void> {
  const clients = Number(values.clients);
  const nats = await startNatsServer();
  try {
    const cluster = "bench";
    const th = await startTestHost({
      cluster,
      sinks: [
        { type: "sse", maxStreams: clients + 10, maxStreamsPerClient: clients + 10 },
        { type: "nats", servers: [nats.url] },
      ],
    });
    try {
      await measure(th, nats.url, subjectsFor(defaultPrefix(cluster)).replay, clients);
    } finally {
      await th.destroy();
    }
  } finally {
    await nats.destroy();
  }
}

async function measure(th: TestHost, natsUrl: string, replaySubject: string, clients: number): Promise<void> {
  const pods = Number(values.pods);
  const nodes = Math.min(Number(values.nodes), pods);
  const loading = performance.now();
  for (let n = 0; n < nodes; n++) {
    const node = makeNode(nodeName(n));
    // The simulator's store gives nodes their uid; the core drops an object without one.
    await th.changes.apply("nodes", "ADDED", {
      ...node,
      metadata: { ...node.metadata, uid: `node-${n}`, resourceVersion: "1" },
    });
  }
  for (let i = 0; i < pods; i++) {
    const pod = makePod({ name: `app-${i}`, namespace: `team-${i % 200}`, node: nodeName(i % nodes) });
    await th.changes.apply("pods", "ADDED", pod);
    if (i % 5000 === 4999) await th.changes.flush();
  }
  await th.changes.flush();
  // Nothing is published while the resets are measured: the sink publishes every update as it is committed.
  await sinkCaughtUp(th, "nats", 120_000);
  const loaded = (performance.now() - loading) / 1000;
  const ram = process.env.BUN_JSC_forceRAMSize;
  console.log(
    `BUN_JSC_forceRAMSize: ${ram ? `${Number(ram) / 2 ** 20} MiB` : "unset (JavaScriptCore sizes to the machine)"}`,
  );
  console.log(`${nodes} nodes, ${pods} pods committed in ${loaded.toFixed(1)} s (head ${th.host.log.head()})`);

  for (const [what, reader] of [
    ["SSE resets of all", ["read", `${th.url}/v1/watch?stream=all`]],
    ["GET /v1/objects", ["read", `${th.url}/v1/objects`]],
    ["NATS resets of all", ["replay", natsUrl, replaySubject]],
  ] as const) {
    Bun.gc(true);
    const base = process.memoryUsage();
    let peak = base.rss;
    let peakHeap = base.heapUsed;
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      peak = Math.max(peak, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    }, 20);
    const started = performance.now();
    const child = Bun.spawn(
      [process.execPath, import.meta.path, ...reader, "--clients", String(clients), "--pause-ms", values["pause-ms"]!],
      { stdout: "pipe", stderr: "inherit" },
    );
    const report = JSON.parse(await new Response(child.stdout).text()) as Report;
    await child.exited;
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `${clients} concurrent ${what} at ${pods} pods: ${mib(report.bytes)} moved in ${seconds.toFixed(1)} s ` +
        `(${mib(report.bytes / seconds)}/s), ${report.complete}/${clients} complete; ` +
        `peak RSS added ${mib(peak - base.rss)} (from ${mib(base.rss)} to ${mib(peak)}), ` +
        `peak JS heap added ${mib(peakHeap - base.heapUsed)} (garbage included)`,
    );
  }
}
