/**
 * `bun run main.ts --demo`: the whole flow on a machine without a cluster. A simulated
 * API server (the one the tests use: a realistic population and a steady churn of pod
 * changes) is watched by the kubernetes source through a kubeconfig written for it,
 * exactly as a real cluster would be; updates go to a libSQL store in a data directory
 * and out over HTTP, and the commands to watch them are printed.
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { resolveConfig } from "../host/config.ts";
import { startHost, type Host } from "../host/host.ts";
import { createLogger } from "../host/logger.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate, startChurn } from "../simulator/population.ts";
import { builtins } from "../plugins/index.ts";
import type { Logger } from "../sdk/telemetry.ts";

export interface DemoOptions {
  /** HTTP port of kubemeta; 0 picks a free one. */
  port: number;
  /** Where the store and the simulated cluster's kubeconfig live. */
  dataDir: string;
  nodes?: number;
  podsPerNode?: number;
  changesPerSecond?: number;
  /** Where the instructions go (stdout by default). */
  print?: (text: string) => void;
  /**
   * Called once kubemeta's logger exists, with how long its stop may take (the config's shutdownTimeout), before
   * kubemeta starts: main.ts logs repeated signals from then on.
   */
  starting?: (logger: Logger, shutdownTimeoutMs: number) => void;
}

export interface Demo {
  host: Host;
  /** The host's logger, for what escapes every handler (main.ts guards the process with it, as a serve's). */
  logger: Logger;
  /** kubemeta's base URL. */
  url: string;
  stop(): Promise<void>;
}

const SYNC_TIMEOUT_MS = 60_000;

/** In the data directory: the process id of the demo that serves from it. */
const PID_FILE = "demo.pid";

/** The process id of another demo that serves from `dataDir` and still runs; undefined when none does. */
async function demoRunningIn(dataDir: string): Promise<number | undefined> {
  const pid = Number(
    await Bun.file(join(dataDir, PID_FILE))
      .text()
      .catch(() => ""),
  );
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM" ? pid : undefined;
  }
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const { nodes = 20, podsPerNode = 15, changesPerSecond = 3 } = options;
  const print = options.print ?? ((text: string) => process.stdout.write(text));
  const dataDir = resolve(options.dataDir);
  // Another demo serving from this directory would lose its store to this one's fresh start (and keep serving it
  // from deleted files), even if this one then failed to start.
  const running = await demoRunningIn(dataDir);
  if (running !== undefined)
    throw new Error(
      `another demo (pid ${running}) serves from ${dataDir}: stop it, or start this one from another directory`,
    );
  // The simulated cluster is new on every run, so a store kept from an earlier run would describe another cluster.
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true });
  await Bun.write(join(dataDir, PID_FILE), String(process.pid));

  // Plain HTTP: TLS would need the openssl CLI, which a fresh machine may lack.
  const cluster: TestApiServer = await startTestApiServer({ tls: false });
  populate(cluster, { nodes, podsPerNode, namespaces: 5 });
  const churn = startChurn(cluster, { perSecond: changesPerSecond });
  const kubeconfig = join(dataDir, "kubeconfig.yaml");
  await cluster.writeKubeconfig(kubeconfig, "token");

  let host: Host | undefined;
  let logger: Logger | undefined;
  const stop = async () => {
    churn.stop();
    // A host that runs out of shutdownTimeout throws (main.ts exits 1); the demo's own parts are cleared even so.
    try {
      await host?.stop();
    } finally {
      await cluster.stop();
      // Left behind, its pid may belong to another process one day, and refuse a demo here for nothing.
      await rm(join(dataDir, PID_FILE), { force: true });
    }
  };
  try {
    const config = await resolveConfig(
      {
        cluster: { name: "demo" },
        log: { level: "warn" },
        store: { type: "libsql", url: `file:${join(dataDir, "kubemeta.db")}` },
        sources: [{ type: "kubernetes", kubeconfig }],
        sinks: [{ type: "sse" }],
        http: { address: "127.0.0.1", port: options.port },
      },
      { baseDir: dataDir, registry: builtins },
    );
    logger = createLogger({ level: config.logLevel });
    options.starting?.(logger, config.shutdownTimeoutMs);
    host = await startHost(config, { logger });
    await waitUntilReady(host);
  } catch (error) {
    await stop();
    throw error;
  }

  const url = host.http.url();
  const node = cluster.names("Node")[0]?.name ?? "<node>";
  const pods = cluster.names("Pod").length;
  const size = `${nodes} nodes and ${pods} pods (${changesPerSecond} pod changes/s)`;
  print(`
kubemeta demo: a simulated cluster of ${size} at ${cluster.url},
watched by kubemeta at ${url}; store in ${join(dataDir, "kubemeta.db")}.

  Every update: RESET, the current state as ADDED, SYNCED, then live changes:
    curl -N '${url}/v1/watch?stream=all'
  What the agent of one node needs (its node's stream, and the shared one):
    curl -N '${url}/v1/watch?stream=node/${node}'
    curl -N '${url}/v1/watch?stream=shared&kinds=Service,EndpointSlice'
  The current state, and a replay page:
    curl '${url}/v1/objects?kind=Pod&namespace=payments'
    curl '${url}/v1/updates?stream=all&limit=10'
  Metrics:
    curl ${url}/metrics

Ctrl-C stops.
`);
  return { host, url, logger, stop };
}

async function waitUntilReady(host: Host): Promise<void> {
  const deadline = Date.now() + SYNC_TIMEOUT_MS;
  for (;;) {
    const readiness = await host.readiness();
    if (readiness.ready) return;
    if (Date.now() > deadline)
      throw new Error(`the demo did not become ready in ${SYNC_TIMEOUT_MS / 1000}s: ${readiness.waiting.join("; ")}`);
    await Bun.sleep(50);
  }
}
