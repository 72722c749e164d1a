/**
 * Fan-out of /v1/watch to many SSE subscribers at a steady rate of pod changes: events
 * delivered per second, and latency from commit to subscriber (p50, p99, max).
 *
 *   bun bench/sse.ts [--subscribers 100] [--rate 1000] [--seconds 10] [--stream all]
 *
 * The subscribers live in a child process, so they do not share the host's event loop
 * (on 2 cores they still share the CPU). Bun's fetch runs at most 256 requests at once
 * per process; the child is started with BUN_CONFIG_MAX_HTTP_REQUESTS raised to fit.
 * Latency is measured from the envelope's `time` (set when the core numbers the update,
 * before the commit) to the event's arrival, so it includes the commit.
 */
import { parseArgs } from "node:util";
import { rawPod, startTestHost } from "../testing/index.ts";
import { SseParser } from "../tests/sse-client.ts";

const NODES = 50;
const PODS = 1000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    subscribers: { type: "string", default: "100" },
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "10" },
    stream: { type: "string", default: "all" },
  },
});

if (positionals[0] === "subscribe") await subscribers(positionals[1]!, Number(values.subscribers));
else await main();

interface Report {
  delivered: number;
  latencies: { p50: number; p99: number; max: number };
  /** Subscribers that did not get every update of the run. */
  incomplete: number;
  seconds: number;
}

/**
 * Child process: opens the subscribers, says "ready" once all are SYNCED, reports when stdin gives the last version.
 */
async function subscribers(url: string, count: number): Promise<void> {
  const commitTimes = new Map<string, number>();
  const latencies: number[] = [];
  const lastVersion = new Array<number>(count).fill(0);
  let synced = 0;
  let first = 0;
  let last = 0;
  const open = async (index: number) => {
    const response = await fetch(url, { headers: { accept: "text/event-stream" } });
    let live = false;
    const parser = new SseParser((event) => {
      if (event.type === "SYNCED") {
        live = true;
        synced++;
        return;
      }
      if (!live) return;
      const now = Date.now();
      let time = commitTimes.get(event.lastEventId);
      if (time === undefined) {
        time = Date.parse(/"time":"([^"]+)"/.exec(event.data)![1]!);
        commitTimes.set(event.lastEventId, time);
      }
      latencies.push(now - time);
      lastVersion[index] = Number(event.lastEventId.slice(event.lastEventId.lastIndexOf(":") + 1));
      first ||= now;
      last = now;
    });
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) parser.push(decoder.decode(chunk, { stream: true }));
  };
  for (let i = 0; i < count; i++)
    void open(i).catch((error: unknown) => process.stderr.write(`subscriber ${i}: ${String(error)}\n`));
  while (synced < count) await Bun.sleep(20);
  process.stdout.write("ready\n");

  const target = Number((await new Response(Bun.stdin.stream()).text()).trim());
  const deadline = Date.now() + 10_000;
  while (lastVersion.some((v) => v < target) && Date.now() < deadline) await Bun.sleep(20);
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  const report: Report = {
    delivered: latencies.length,
    latencies: { p50: at(50), p99: at(99), max: latencies.at(-1) ?? NaN },
    incomplete: lastVersion.filter((v) => v < target).length,
    seconds: (last - first) / 1000,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

async function main(): Promise<void> {
  const count = Number(values.subscribers);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  // Every subscriber comes from the one child process, so from one address.
  const th = await startTestHost({ sinks: [{ type: "sse", maxStreams: count + 10, maxStreamsPerClient: count + 10 }] });
  const pod = (i: number, generation: number) =>
    rawPod(`bench-${i}`, {
      node: `node-${i % NODES}`,
      labels: { app: "bench", generation: String(generation) },
      rv: String(generation + 1),
    });
  for (let i = 0; i < PODS; i++) await th.changes.apply("pods", "ADDED", pod(i, 0));
  await th.changes.flush();

  const url = `${th.url}/v1/watch?stream=${encodeURIComponent(values.stream)}`;
  const child = Bun.spawn([process.execPath, import.meta.path, "subscribe", url, "--subscribers", String(count)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.max(256, count + 16)) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const nextLine = async () => {
    const { value, done } = await lines.read();
    if (done) throw new Error("the subscriber process exited");
    return value.trim();
  };
  if ((await nextLine()) !== "ready") throw new Error("the subscriber process did not get ready");

  const started = performance.now();
  let changes = 0;
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    for (; changes < due; changes++) await th.changes.apply("pods", "MODIFIED", pod(changes % PODS, changes + 1));
    await Bun.sleep(5);
  }
  await th.changes.flush();
  const produceSeconds = (performance.now() - started) / 1000;
  child.stdin.write(`${th.host.log.head()}\n`);
  await child.stdin.end();
  const report = JSON.parse(await nextLine()) as Report;
  await child.exited;
  await th.destroy();

  const { p50, p99, max } = report.latencies;
  console.log(
    `SSE fan-out: ${count} subscribers on "${values.stream}", ` +
      `${changes} pod changes in ${produceSeconds.toFixed(1)} s ` +
      `(${Math.round(changes / produceSeconds)}/s committed)`,
  );
  console.log(
    `  delivered ${report.delivered} events, ${Math.round(report.delivered / report.seconds)} events/s to subscribers`,
  );
  console.log(`  latency commit → subscriber: p50 ${p50} ms, p99 ${p99} ms, max ${max} ms`);
  console.log(
    `  subscribers missing updates at the end: ${report.incomplete}; ` +
      `peak RSS of the host process ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`,
  );
}
