/**
 * What bench/sync.ts and bench/ingest.ts share: the simulated API server and kubemeta each as a
 * real process (so each one's memory and stalls are its own), the simulator driven over its stdin
 * (simulator/cli.ts: stats, churn), and the measures taken from outside: peak RSS from the kernel,
 * /healthz latency, /metrics series.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "../tests/cluster-checks.ts";
import { startNatsServer } from "../tests/nats-server.ts";
import { IMAGE_ALLOCATOR, MAIN, Output } from "../tests/reliability-process.ts";
import { waitFor } from "../testing/index.ts";

/**
 * The allocator's settings that the image gives kubemeta (the Containerfile's `MIMALLOC_*`; README "Memory in a
 * container" says why), for kubemeta as deployed. One of the bench's own environment wins; set empty, it is left unset
 * (Bun's default).
 */
const allocatorSettings = Object.entries(IMAGE_ALLOCATOR).map(
  ([name, imageValue]) => [name, process.env[name] ?? imageValue] as const,
);
export const asDeployed: Record<string, string | undefined> = { ...process.env };
for (const [name, value] of allocatorSettings) {
  if (value === "") delete asDeployed[name];
  else asDeployed[name] = value;
}

export function machine(): string {
  return (
    `machine: ${cpus().length} cores, ${cpus()[0]?.model ?? "unknown CPU"}, Bun ${Bun.version}; ` +
    `${new Date().toISOString()}; load average ${loadavg()[0]!.toFixed(2)} at start`
  );
}

/**
 * The simulated API server never gives freed memory back: what it costs is not what is measured, and it takes its
 * CPU from the same two cores (3.0 s of CPU in a sync so, 7.3–9.0 s with Bun's default on machine B).
 */
const simulatorEnv = { ...process.env, MIMALLOC_PURGE_DELAY: "-1" };

/** Says how the processes started here run (asDeployed, simulatorEnv). */
export function allocatorLine(): string {
  const kubemeta = allocatorSettings.map(([name, value]) => `${name} ${value || "unset"}`).join(", ");
  return `kubemeta runs with ${kubemeta}, the API server with MIMALLOC_PURGE_DELAY -1 (keeps what it frees)`;
}

export const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
export const mib = (bytes: number) => `${fmt(bytes / 1024 / 1024)} MiB`;
export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** A live process's /proc/<pid>/status, as a reader of its fields in kB, in bytes (0 for a field it lacks). */
async function memoryStatus(pid: number): Promise<(field: string) => number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  return (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
}

/** Peak resident set of a live process (VmHWM: the kernel's own high-water mark, nothing missed between samples). */
export async function peakRss(pid: number): Promise<number> {
  return (await memoryStatus(pid))("VmHWM");
}

/**
 * Resident memory of a live process now, not its high-water mark: anonymous memory is the heaps'; file pages are the
 * binary's and SQLite's shared WAL index, which the kernel may take back at any time.
 */
export async function residentNow(pid: number): Promise<{ rss: number; anon: number; file: number }> {
  const field = await memoryStatus(pid);
  return { rss: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile") + field("RssShmem") };
}

/** The fields of a /proc/<pid>/stat (or task) line after the command name, from `state` (field 3) on. */
async function statFields(path: string): Promise<string[]> {
  const stat = await Bun.file(path).text();
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** CPU seconds in a stat line's fields: utime + stime, clock ticks of 1/100 s. */
const cpuOf = (fields: string[]) => (Number(fields[11]) + Number(fields[12])) / 100;
/** Minor page faults: memory touched afresh. */
const faultsOf = (fields: string[]) => Number(fields[7]);

/** CPU time a live process has used so far, user + system, in seconds. */
export async function cpuSeconds(pid: number): Promise<number> {
  return cpuOf(await statFields(`/proc/${pid}/stat`));
}

/**
 * Page faults a live process has taken that needed no I/O (minflt): each is a page touched for the first time since
 * the allocator took it from the kernel, or since it gave it back.
 */
export async function minorFaults(pid: number): Promise<number> {
  return faultsOf(await statFields(`/proc/${pid}/stat`));
}

/**
 * CPU seconds of each thread of a live process by its name (/proc/<pid>/task/<tid>/comm), the busiest first, with
 * the page faults it took (minorFaults).
 */
export async function threadCpu(pid: number): Promise<[name: string, cpu: number, faults: number][]> {
  const threads: [string, number, number][] = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const name = (await Bun.file(`/proc/${pid}/task/${tid}/comm`).text()).trim();
    const fields = await statFields(`/proc/${pid}/task/${tid}/stat`);
    threads.push([name, cpuOf(fields), faultsOf(fields)]);
  }
  return threads.sort((a, b) => b[1] - a[1]);
}

export interface SimulatorStats {
  requests: Record<string, number>;
  bytesSent: number;
  resourceVersion: string;
}

/** Requests of some verbs (e.g. ["list", "watchlist"]) between two stats, all resources together. */
export function requestsBetween(before: SimulatorStats, after: SimulatorStats, verbs: string[]): number {
  let sum = 0;
  for (const [key, count] of Object.entries(after.requests))
    if (verbs.includes(key.split(" ")[0]!)) sum += count - (before.requests[key] ?? 0);
  return sum;
}

/** simulator/cli.ts in its own process; `command` writes one stdin line and reads its one-line JSON answer. */
export class Simulator {
  private buffer = "";
  private readonly chunks: AsyncIterator<Uint8Array>;
  private queue = Promise.resolve();
  info!: { url: string; objects: number; populateMs: number };

  private constructor(
    private readonly proc: Subprocess<"pipe", "pipe", "inherit">,
    readonly kubeconfig: string,
  ) {
    this.chunks = proc.stdout[Symbol.asyncIterator]();
  }

  static async start(dir: string, args: string[]): Promise<Simulator> {
    const kubeconfig = join(dir, "kubeconfig");
    const cli = join(import.meta.dir, "../simulator/cli.ts");
    const proc = Bun.spawn([process.execPath, cli, ...args, "--kubeconfig", kubeconfig], {
      env: simulatorEnv,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    const simulator = new Simulator(proc, kubeconfig);
    simulator.info = (await simulator.line()) as Simulator["info"];
    return simulator;
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** The kubeconfig's CA as a PEM file, for a client that reads only NODE_EXTRA_CA_CERTS (client-node under Bun). */
  async writeCa(path: string): Promise<string> {
    const data = /certificate-authority-data: (\S+)/.exec(await Bun.file(this.kubeconfig).text())?.[1] ?? "";
    await Bun.write(path, Buffer.from(data, "base64"));
    return path;
  }

  private async line(): Promise<unknown> {
    for (;;) {
      const at = this.buffer.indexOf("\n");
      if (at >= 0) {
        const text = this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + 1);
        return JSON.parse(text);
      }
      const { value, done } = await this.chunks.next();
      if (done) throw new Error("the simulator exited");
      this.buffer += new TextDecoder().decode(value);
    }
  }

  command(text: string): Promise<unknown> {
    const answer = this.queue.then(() => {
      this.proc.stdin.write(`${text}\n`);
      this.proc.stdin.flush();
      return this.line();
    });
    this.queue = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  }

  stats(): Promise<SimulatorStats> {
    return this.command("stats") as Promise<SimulatorStats>;
  }

  /** Ends the process and the pipes to it: an open stdin or a pending read of stdout would keep this process alive. */
  async stop(): Promise<void> {
    this.proc.stdin.end();
    this.proc.kill("SIGTERM");
    await this.proc.exited;
    await this.chunks.return?.();
  }
}

/**
 * kubemeta's config: the kubernetes source on the simulator (with `source`, more of its keys as YAML lines), a libSQL
 * file, the sinks given as YAML lines.
 */
export async function writeConfig(
  dir: string,
  kubeconfig: string,
  sinks: string[] = [],
  source: string[] = [],
): Promise<string> {
  const path = join(dir, "kubemeta.yaml");
  await Bun.write(
    path,
    [
      "cluster: { name: bench }",
      "log: { level: warn }",
      `http: { address: 127.0.0.1, port: ${await freePort()} }`,
      `store: { type: libsql, url: "file:${join(dir, "kubemeta.db")}" }`,
      "sources:",
      "  - type: kubernetes",
      `    kubeconfig: ${kubeconfig}`,
      ...source.map((line) => `    ${line}`),
      ...(sinks.length > 0 ? ["sinks:", ...sinks] : []),
    ].join("\n"),
  );
  return path;
}

/**
 * What a bench of kubemeta publishing to NATS starts (bench/ingest.ts, bench/soak.ts): a temporary directory, a
 * nats-server of its own, the simulated API server (`nodes` × `podsPerNode`, then `args`) and kubemeta's config with
 * a NATS sink on that server. `close` ends them all, every kubemeta started too.
 */
export async function startNatsBench(name: string, cluster: { nodes: string; podsPerNode: string }, args: string[]) {
  const dir = await mkdtemp(join(tmpdir(), `kubemeta-bench-${name}-`));
  const nats = await startNatsServer();
  const simulator = await Simulator.start(dir, [
    "--nodes",
    cluster.nodes,
    "--pods-per-node",
    cluster.podsPerNode,
    ...args,
  ]);
  const config = await writeConfig(dir, simulator.kubeconfig, [`  - { type: nats, servers: ["${nats.url}"] }`]);
  return {
    dir,
    nats,
    simulator,
    config,
    async close() {
      await Kubemeta.killAll();
      await simulator.stop();
      await nats.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Every series of a metric summed, from Prometheus text. */
export function metricSum(text: string, name: string, labels = ""): number {
  let sum = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      if (line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

/** `bun main.ts --config <file>` as a child process: its URL, /readyz, /metrics and its peak RSS. */
export class Kubemeta {
  /** Every one started, so that a failed run leaves none behind. */
  private static readonly started = new Set<Kubemeta>();
  readonly out: Output;
  readonly err: Output;
  readonly url: string;

  private constructor(
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
    port: number,
  ) {
    this.out = new Output(proc.stdout);
    this.err = new Output(proc.stderr);
    this.url = `http://127.0.0.1:${port}`;
  }

  /** `env`: set for kubemeta alone, over the image's environment (the API server and the informer keep theirs). */
  static async start(config: string, env: Record<string, string> = {}): Promise<Kubemeta> {
    const port = Number(/port: (\d+)/.exec(await Bun.file(config).text())![1]);
    const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", config], {
      env: { ...asDeployed, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const kubemeta = new Kubemeta(proc, port);
    Kubemeta.started.add(kubemeta);
    return kubemeta;
  }

  static async killAll(): Promise<void> {
    for (const kubemeta of Kubemeta.started) await kubemeta.kill("SIGKILL");
  }

  /** Fails at once when kubemeta exits first (a bad config, an option Bun refuses), with what it said. */
  async ready(timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        if (this.proc.exitCode !== null)
          throw new Error(`kubemeta exited with ${this.proc.exitCode} before it was ready:\n${this.err.text}`);
        return (await fetch(`${this.url}/readyz`).catch(() => undefined))?.ok;
      },
      timeoutMs,
      "kubemeta /readyz 200",
    );
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.url}/metrics`)).text();
  }

  peakRss(): Promise<number> {
    return peakRss(this.proc.pid);
  }

  async kill(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    Kubemeta.started.delete(this);
    this.proc.kill(signal);
    await this.proc.exited;
  }
}

/**
 * Requests /healthz every `everyMs` until stop(), one at a time, from a process of its own (bench/prober.ts says why):
 * how long kubemeta keeps a probe waiting. Probes before its listener is up fail and are not counted.
 */
export function probeHealth(url: string, everyMs = 20): { stop(): Promise<number[]> } {
  const prober = Bun.spawn([process.execPath, join(import.meta.dir, "prober.ts"), url, String(everyMs)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  return {
    async stop() {
      // A prober that died has closed its end: its exit code says so below.
      await Promise.resolve(prober.stdin.end()).catch(() => {});
      const [text, code] = await Promise.all([new Response(prober.stdout).text(), prober.exited]);
      if (code !== 0) throw new Error(`the /healthz prober exited with ${code}`);
      return JSON.parse(text) as number[];
    },
  };
}

export function percentile(values: number[], p: number): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}
