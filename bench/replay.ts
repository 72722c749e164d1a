/**
 * Replay to one consumer (DESIGN.md target: ≥ 100,000 updates/s): a real host on a libSQL
 * `file:` store holding `--updates` real-size slim pods (simulator pods through the core's
 * slim path, about 1 KB each), then, one at a time:
 *
 * 1. the store alone: the committed log's reads of versions older than its memory tail
 *    (pages of 2,000, what the NATS replay reads), and the raw read under it (the stored
 *    object JSON of each row, no decoding) as the ceiling of any read path;
 * 2. NATS: one `<prefix>.replay` of `all` from version 0, to a consumer in another
 *    process over a real nats-server;
 * 3. SSE: `GET /v1/watch?stream=all` with `Last-Event-ID: <epoch>:0` to a consumer in
 *    another process, up to SYNCED.
 *
 * The consumers count updates and bytes without decoding them (`--verify` parses every
 * envelope and checks that the versions follow the resume point one by one), so the host's rate is what is measured.
 * The host runs in this process: give it the image's allocator settings (Containerfile) to measure it as deployed.
 * It is started on the filled store, as kubemeta is when consumers that were away ask for what they missed: another
 * process fills the store (a host of its own, stopped once its sinks published everything). `--same-process` fills
 * it with the measured host instead and measures in the fill's wake: a heap whose collector is still behind a million
 * applies (and the bench's own 20,000 raw pods), where the same reads ran at about half the speed (bench/RESULTS.md).
 *
 *   MIMALLOC_PURGE_DELAY=10000 MIMALLOC_PURGE_HOLES=0 bun bench/replay.ts [--updates 1000000] [--pods 20000]
 *                       [--nodes 500] [--dir <kept store>] [--verify] [--only store|nats|sse] [--same-process]
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect, createInbox } from "@nats-io/transport-node";
import { createClient } from "@libsql/client";
import type { KubeObject } from "../sdk/model.ts";
import { makePod } from "../simulator/pods.ts";
import { nodeName } from "../simulator/nodes.ts";
import { sinkCaughtUp, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { startNatsServer } from "../tests/nats-server.ts";

const PREFIX = "kubemeta.bench";
const PAGE = 2_000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    updates: { type: "string", default: "1000000" },
    pods: { type: "string", default: "20000" },
    nodes: { type: "string", default: "500" },
    dir: { type: "string" },
    verify: { type: "boolean", default: false },
    only: { type: "string" },
    "same-process": { type: "boolean", default: false },
  },
});

interface Consumed {
  updates: number;
  bytes: number;
  seconds: number;
  /** CPU seconds of the consumer process. */
  cpu: number;
  /** With --verify: the first version out of sequence, if any. */
  broken?: string;
}

const [mode, ...args] = positionals;
if (mode === "fill") await fillAndStop(args[0]!, args[1]!);
else if (mode === "nats") print(await consumeNats(args[0]!, args[1]!, args[2]!));
else if (mode === "sse") print(await consumeSse(args[0]!, args[1]!));
else await main();

function print(result: Consumed): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Versions in order after the resume point `<epoch>:<version>`, for --verify. */
function checker(from: string) {
  let expected = Number(from.split(":")[1]) + 1;
  let broken: string | undefined;
  return {
    check(envelope: { version: number }) {
      if (broken === undefined && envelope.version !== expected) broken = `${envelope.version} for ${expected}`;
      expected++;
    },
    get broken() {
      return broken;
    },
  };
}

/** Occurrences of `needle` in `text`. */
function occurrences(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

async function consumeNats(url: string, subject: string, from: string): Promise<Consumed> {
  const nc = await connect({ servers: url });
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const verify = checker(from);
  const cpu = process.cpuUsage();
  const started = performance.now();
  nc.publish(subject, JSON.stringify({ stream: "all", from }), { reply: inbox });
  let updates = 0;
  let bytes = 0;
  for await (const msg of sub) {
    bytes += msg.data.length;
    const text = msg.string();
    if (values.verify) {
      const chunk = JSON.parse(text) as { updates: { version: number }[] };
      for (const envelope of chunk.updates) verify.check(envelope);
      updates += chunk.updates.length;
    } else updates += occurrences(text, '{"epoch":') - 1;
    // The final chunk ends with `"last":true,"through":<version>}`.
    if (text.lastIndexOf('"last":true') > text.lastIndexOf("]")) break;
  }
  const seconds = (performance.now() - started) / 1000;
  await nc.close();
  return { updates, bytes, seconds, cpu: cpuSeconds(cpu), broken: verify.broken };
}

async function consumeSse(url: string, lastEventId: string): Promise<Consumed> {
  const verify = checker(lastEventId);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const abort = new AbortController();
  const response = await fetch(`${url}/v1/watch?stream=all`, {
    headers: { "last-event-id": lastEventId },
    signal: abort.signal,
  });
  const decoder = new TextDecoder();
  let updates = 0;
  let bytes = 0;
  // Text after the last complete event, which the next read completes.
  let rest = "";
  for await (const bytesRead of response.body!) {
    bytes += bytesRead.length;
    const text = rest + decoder.decode(bytesRead, { stream: true });
    const end = text.lastIndexOf("\n\n") + 2;
    const events = text.slice(0, end);
    rest = text.slice(end);
    if (values.verify) {
      for (const line of events.split("\n"))
        if (line.startsWith("data: {") && line.includes('"type":'))
          verify.check(JSON.parse(line.slice(6)) as { version: number });
    }
    updates += occurrences(events, "\nevent: ADDED\n") + occurrences(events, "\nevent: MODIFIED\n");
    updates += occurrences(events, "\nevent: DELETED\n");
    if (events.includes("event: SYNCED\n")) break;
  }
  const seconds = (performance.now() - started) / 1000;
  abort.abort();
  return { updates, bytes, seconds, cpu: cpuSeconds(cpu), broken: verify.broken };
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

function rate(count: number, seconds: number): string {
  return `${Math.round(count / seconds).toLocaleString("en-US")} updates/s`;
}

/** Commits until the log holds `--updates`: each of `--pods` pods added once, then modified round after round. */
async function fill(th: TestHost): Promise<void> {
  const [target, pods, nodes] = [Number(values.updates), Number(values.pods), Number(values.nodes)];
  const from = th.host.log.head();
  if (from >= target) return;
  const owner = { kind: "ReplicaSet", name: "web-7d9f8c6b5", uid: crypto.randomUUID() };
  const raws: KubeObject[] = Array.from({ length: pods }, (_, i) =>
    makePod({ name: `web-${i}-7d9f8c6b5-x2x9q`, namespace: `team-${i % 40}`, node: nodeName(i % nodes), owner }),
  );
  const started = performance.now();
  for (let n = from; n < target; n++) {
    const raw = raws[n % pods]!;
    const round = Math.floor(n / pods);
    const metadata = raw.metadata!;
    // A new label each round: the slim copy changes, so no change is suppressed.
    const labels = { ...(metadata.labels as Record<string, string>), revision: String(round) };
    const changed = { ...raw, metadata: { ...metadata, labels, resourceVersion: String(n + 1) } };
    const pending = th.changes.apply("pods", round === 0 && from === 0 ? "ADDED" : "MODIFIED", changed);
    if (pending) await pending;
    if ((n + 1) % 100_000 === 0) console.log(`  committed ${(n + 1).toLocaleString("en-US")}`);
  }
  await th.changes.flush();
  await waitFor(() => th.host.log.head() >= target, 60_000, "the last commit");
  const seconds = (performance.now() - started) / 1000;
  console.log(`filled ${(target - from).toLocaleString("en-US")} updates in ${seconds.toFixed(1)} s`);
}

/** The committed log's reads, from the store (the memory tail holds only the newest updates). */
async function storeRead(th: TestHost, upTo: number): Promise<void> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let after = 0;
  let count = 0;
  while (after < upTo) {
    const page = await th.host.log.read({ stream: "all", after, to: upTo, limit: PAGE });
    if (page.length === 0) break;
    count += page.length;
    after = page[page.length - 1]!.version;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `store read (log.read, pages of ${PAGE}):  ${rate(count, seconds)}  (${count} in ${seconds.toFixed(2)} s, ` +
      `CPU ${cpuSeconds(cpu).toFixed(2)} s)`,
  );
}

/** The stored object text of each row and nothing else: what any read of the log costs at least. */
async function rawRead(dbFile: string, upTo: number): Promise<void> {
  const client = createClient({ url: `file:${dbFile}` });
  try {
    const started = performance.now();
    let bytes = 0;
    for (let after = 0; after < upTo; after += PAGE) {
      const sql = `SELECT group_concat(object, char(10)) AS objects FROM
        (SELECT object FROM updates WHERE rowid > ? ORDER BY rowid LIMIT ?)`;
      const row = (await client.execute({ sql, args: [after, PAGE] })).rows[0];
      bytes += String(row?.objects ?? "").length;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `raw read (object text only, pages of ${PAGE}):  ${rate(upTo, seconds)}  ` +
        `(${(bytes / 2 ** 20).toFixed(0)} MiB of objects, ${(bytes / upTo).toFixed(0)} B each)`,
    );
  } finally {
    client.close();
  }
}

async function consumer(args: string[]): Promise<Consumed> {
  const flags = values.verify ? ["--verify"] : [];
  const child = Bun.spawn([process.execPath, import.meta.path, ...args, ...flags], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error(`consumer ${args[0]} failed`);
  return JSON.parse(output) as Consumed;
}

function report(what: string, result: Consumed, hostCpu: number, expected: number): void {
  const mib = result.bytes / 2 ** 20;
  const verified = values.verify ? (result.broken ? `, OUT OF ORDER: ${result.broken}` : ", versions verified") : "";
  console.log(
    `${what}:  ${rate(result.updates, result.seconds)}  (${result.updates}/${expected} updates, ` +
      `${mib.toFixed(0)} MiB, ${(mib / result.seconds).toFixed(0)} MiB/s, ${result.seconds.toFixed(2)} s; ` +
      `CPU host ${hostCpu.toFixed(2)} s, consumer ${result.cpu.toFixed(2)} s${verified})`,
  );
}

function sinksOf(natsUrl: string) {
  return [{ type: "nats", servers: [natsUrl], prefix: PREFIX }, { type: "sse" }];
}

/** The `fill` child: fills the store in `dir` and stops its host, which saves the sinks' cursors. */
async function fillAndStop(natsUrl: string, dir: string): Promise<void> {
  const th = await startTestHost({ dir, sinks: sinksOf(natsUrl) });
  try {
    await fill(th);
    await sinkCaughtUp(th, "nats", 300_000);
  } finally {
    await th.stop();
  }
}

async function main(): Promise<void> {
  const updates = Number(values.updates);
  console.log(
    `machine: ${availableParallelism()} cores, ${cpus()[0]?.model ?? "unknown CPU"}, Bun ${Bun.version}, ` +
      `load average ${loadavg()[0]!.toFixed(2)}`,
  );
  const server = await startNatsServer();
  const dir = values.dir ?? (await tempDir("kubemeta-bench-"));
  let th: TestHost | undefined;
  try {
    const sameProcess = values["same-process"];
    if (!sameProcess) {
      const child = Bun.spawn([process.execPath, import.meta.path, "fill", server.url, dir, ...process.argv.slice(2)], {
        stdio: ["ignore", "inherit", "inherit"],
      });
      if ((await child.exited) !== 0) throw new Error("filling the store failed");
    }
    th = await startTestHost({ dir, sinks: sinksOf(server.url) });
    if (sameProcess) await fill(th);
    // The replay is measured alone: the sink has published everything live first.
    await sinkCaughtUp(th, "nats", 300_000);
    const head = th.host.log.head();
    const where = sameProcess ? "the host that filled it" : "a host started on the filled store";
    console.log(
      `log head ${head.toLocaleString("en-US")}; replaying ${updates.toLocaleString("en-US")} of it, from ${where}`,
    );
    const run = (what: string) => values.only === undefined || values.only === what;
    if (run("store")) {
      await storeRead(th, updates);
      await rawRead(join(dir, "kubemeta.db"), updates);
    }
    const from = `${th.host.epoch}:${head - updates}`;
    let cpu = process.cpuUsage();
    if (run("nats"))
      report("NATS replay", await consumer(["nats", server.url, `${PREFIX}.replay`, from]), cpuSeconds(cpu), updates);
    cpu = process.cpuUsage();
    if (run("sse")) report("SSE resume", await consumer(["sse", th.url, from]), cpuSeconds(cpu), updates);
    console.log(`load average at the end ${loadavg()[0]!.toFixed(2)}`);
  } finally {
    await th?.stop();
    if (!values.dir) await rm(dir, { recursive: true, force: true });
    await server.destroy();
  }
}
