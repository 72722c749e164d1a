/**
 * kubemeta as deploy/kubemeta.yaml runs it, under its memory limit for real: the manifest's `sse` sink (read from
 * it), a libSQL file, its environment (BUN_JSC_forceRAMSize = limits.memory, the image's ENV), in a cgroup v1
 * memory cgroup of its limits.memory, against the simulator at bench/sync.ts's scale. Root and cgroup v1's memory
 * controller at /sys/fs/cgroup/memory are needed (a container engine is not). Phases, each with the cgroup's peak
 * (memory.max_usage_in_bytes: anonymous memory and the store's page cache), its anonymous and cache parts sampled
 * every 50 ms, and the cgroup's OOM kills:
 *   the initial sync; 10 SSE resets of `all`; 10 `GET /v1/objects` (as bench/snapshots.ts); `maxStreams` SSE resets
 *   whose clients read nothing; `maxStreams` streams resuming from version 1 whose clients read nothing. The clients
 *   that read nothing come from 127.0.0.2 and up, 100 an address (the sink's `maxStreamsPerClient`).
 *
 *   bun bench/cgroup.ts                                  # 5,000 nodes, 150,000 pods, ~50,000 others; 1536 MiB
 *   bun bench/cgroup.ts --nodes 100 --pods-per-node 30 --namespaces 100 --hold-s 5
 *   bun bench/cgroup.ts --sse "bufferBytes: 1048576"     # keys of the sse sink's over the manifest's
 */
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../tests/cluster-checks.ts";
import { IMAGE_ENV, MAIN } from "../tests/reliability-process.ts";
import { manifestsOf, memoryLimitMib, shippedSseSink } from "../tests/deploy-manifests.ts";
import { waitFor } from "../testing/index.ts";
import { fmt, machine, mib, seconds, Simulator } from "./processes.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "5000" },
    "pods-per-node": { type: "string", default: "30" },
    namespaces: { type: "string", default: "5000" },
    // Over deploy/kubemeta.yaml's limits.memory and its sse sink's keys.
    "limit-mib": { type: "string" },
    sse: { type: "string", default: "" },
    "hold-s": { type: "string", default: "20" },
  },
});

const manifests = await manifestsOf("kubemeta.yaml");
const sseSink = { ...shippedSseSink(manifests), ...(Bun.YAML.parse(`{${values.sse}}`) as object) };
const maxStreams = Number(sseSink.maxStreams ?? 1000);
const limitMib = values["limit-mib"] ?? memoryLimitMib(manifests);
const limit = Number(limitMib) * 2 ** 20;
const cgroup = `/sys/fs/cgroup/memory/kubemeta-bench-${process.pid}`;
const readCgroup = async (file: string) => (await readFile(join(cgroup, file), "utf8")).trim();
const cgroupNumber = async (file: string) => Number(await readCgroup(file));

async function memoryStat(): Promise<Record<string, number>> {
  const lines = (await readCgroup("memory.stat")).split("\n").map((line) => line.split(" "));
  return Object.fromEntries(lines.map(([name, value]) => [name, Number(value)]));
}

/** Starts kubemeta inside the cgroup from its first instruction: the shell joins it, then becomes kubemeta. */
function startKubemeta(config: string, dir: string) {
  const env = { ...process.env, ...IMAGE_ENV, TMPDIR: dir, BUN_JSC_forceRAMSize: String(limit) };
  const joinThenRun = 'echo $$ > "$0/cgroup.procs" && exec "$@"';
  return Bun.spawn(["/bin/sh", "-c", joinThenRun, cgroup, process.execPath, "run", MAIN, "--config", config], {
    env,
    stdout: Bun.file(join(dir, "kubemeta.out")),
    stderr: Bun.file(join(dir, "kubemeta.err")),
  });
}

/** `count` SSE streams that read nothing, 100 from each loopback address from 127.0.0.2 on; held `holdMs`. */
async function unreadStreams(port: number, count: number, lastEventId: string | undefined, holdMs: number) {
  const head = `GET /v1/watch?stream=all HTTP/1.1\r\nHost: kubemeta\r\nAccept: text/event-stream\r\n`;
  const request = `${head}${lastEventId ? `Last-Event-ID: ${lastEventId}\r\n` : ""}\r\n`;
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const localAddress = `127.0.0.${2 + Math.floor(i / 100)}`;
    const socket = connect({ host: "127.0.0.1", port, localAddress }, () => socket.write(request));
    socket.pause();
    sockets.push(socket);
  }
  await Bun.sleep(holdMs);
  const open = sockets.filter((socket) => !socket.destroyed).length;
  for (const socket of sockets) socket.destroy();
  return `${open}/${count} still open`;
}

/** bench/snapshots.ts's readers: `clients` at once, each to SYNCED or the body's end; their report. */
async function readers(url: string, clients: number): Promise<string> {
  const args = ["read", url, "--clients", String(clients)];
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "snapshots.ts"), ...args], { stdout: "pipe" });
  const report = JSON.parse(await new Response(child.stdout).text()) as { bytes: number; complete: number };
  await child.exited;
  return `${mib(report.bytes)} moved, ${report.complete}/${clients} complete`;
}

async function main(): Promise<void> {
  console.log(machine());
  await mkdir(cgroup);
  await writeFile(join(cgroup, "memory.limit_in_bytes"), String(limit));
  // Present only with swap accounting: without it there is no swap to spill to anyway.
  await writeFile(join(cgroup, "memory.memsw.limit_in_bytes"), String(limit)).catch(() => {});
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-cgroup-"));
  const simulator = await Simulator.start(dir, [
    ...["--nodes", values.nodes!, "--pods-per-node", values["pods-per-node"]!],
    ...["--namespaces", values.namespaces!, "--no-compression"],
  ]);
  console.log(`simulated API server: ${fmt(simulator.info.objects)} objects; cgroup limit ${mib(limit)}`);
  console.log(`sse sink: ${JSON.stringify(sseSink)}`);
  const port = await freePort();
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      "cluster: { name: bench }",
      `store: { type: libsql, url: "file:${join(dir, "kubemeta.db")}" }`,
      "sources:",
      `  - { type: kubernetes, kubeconfig: ${simulator.kubeconfig} }`,
      `sinks: [${JSON.stringify(sseSink)}]`,
      `http: { address: 0.0.0.0, port: ${port} }`,
    ].join("\n"),
  );
  const kubemeta = startKubemeta(config, dir);
  const url = `http://127.0.0.1:${port}`;
  let peaks = { anon: 0, cache: 0 };
  const sampler = setInterval(() => {
    memoryStat()
      .then((stat) => {
        peaks = { anon: Math.max(peaks.anon, stat.rss!), cache: Math.max(peaks.cache, stat.cache!) };
      })
      .catch(() => {});
  }, 50);

  const phase = async (name: string, run: () => Promise<string>) => {
    await writeFile(join(cgroup, "memory.max_usage_in_bytes"), "0");
    peaks = { anon: 0, cache: 0 };
    const started = performance.now();
    const what = await run();
    const peak = await cgroupNumber("memory.max_usage_in_bytes");
    const kills = /oom_kill (\d+)/.exec(await readCgroup("memory.oom_control"))?.[1] ?? "?";
    const state = kubemeta.signalCode ?? (kubemeta.exitCode === null ? "alive" : `exited ${kubemeta.exitCode}`);
    console.log(
      `${name}: ${seconds(performance.now() - started)}, ${what}; cgroup peak ${mib(peak)} ` +
        `(${Math.round((100 * peak) / limit)}% of the limit), sampled peaks anonymous ${mib(peaks.anon)}, ` +
        `page cache ${mib(peaks.cache)}; OOM kills so far ${kills}; kubemeta ${state}`,
    );
  };
  try {
    await phase("initial sync", async () => {
      await waitFor(
        async () => {
          if (kubemeta.exitCode !== null || kubemeta.signalCode !== null) throw new Error("kubemeta exited");
          return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok;
        },
        900_000,
        "kubemeta /readyz 200",
      );
      return "ready";
    });
    const { epoch } = (await (await fetch(`${url}/v1/objects?kind=Namespace`)).json()) as { epoch: string };
    const holdMs = Number(values["hold-s"]) * 1000;
    await phase("10 SSE resets of all", () => readers(`${url}/v1/watch?stream=all`, 10));
    await phase("10 GET /v1/objects", () => readers(`${url}/v1/objects`, 10));
    await phase(`${maxStreams} SSE resets read by nobody`, () => unreadStreams(port, maxStreams, undefined, holdMs));
    await phase(`${maxStreams} SSE streams from version 1 read by nobody`, () =>
      unreadStreams(port, maxStreams, `${epoch}:1`, holdMs),
    );
  } finally {
    clearInterval(sampler);
    kubemeta.kill("SIGKILL");
    await kubemeta.exited;
    await simulator.stop();
    // The cgroup empties once the kernel has reaped kubemeta.
    await waitFor(async () => (await readCgroup("cgroup.procs")) === "", 10_000, "the cgroup to empty");
    await rmdir(cgroup);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
