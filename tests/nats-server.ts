/**
 * A real `nats-server` for tests: its own temp config file, a port of its own (never
 * 4222, where a system server may run), and stop()/restart() on that same port so a
 * test can cut NATS in the middle of churn and bring it back.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Subjects a user may not publish to (the server refuses each such message), or subscribe to. */
export interface NatsDenials {
  publishDeny?: string[];
  subscribeDeny?: string[];
}

/** A user allowed to publish and to subscribe to these subjects alone, as README's Permissions writes them. */
export interface NatsAllowedUser {
  user: string;
  password: string;
  publishAllow: string[];
  subscribeAllow: string[];
}

export interface NatsServerOptions {
  /** Largest message the server accepts, in bytes (the server's default is 1 MiB). */
  maxPayload?: number;
  /** Enables JetStream with a store in the server's temp dir. */
  jetstream?: boolean;
  /** One user, and what it is denied (NatsDenials); or several users, each allowed only the subjects it names. */
  auth?:
    | ({ user: string; password: string } & NatsDenials)
    | { token: string }
    | ({ nkey: string } & NatsDenials)
    | { users: NatsAllowedUser[] };
  /** Serve TLS with this certificate; `verify` requires client certificates signed by `caFile`. */
  tls?: { certFile: string; keyFile: string; caFile?: string; verify?: boolean };
}

export interface TestNatsServer {
  readonly port: number;
  /** `nats://127.0.0.1:<port>` (or `tls://…` when TLS is on). */
  readonly url: string;
  readonly dir: string;
  /** The server's process id while it runs (benchmarks read its CPU time). */
  readonly pid: number | undefined;
  /** True between start/restart and stop. */
  running(): boolean;
  /** Kills the server (the port stays reserved for restart). Safe twice. */
  stop(): Promise<void>;
  /** Starts it again on the same port, with the same store and config, or the config of `options` from now on. */
  restart(options?: NatsServerOptions): Promise<void>;
  /**
   * Rewrites the config file with `options` and has the running server reload it (SIGHUP), as an operator would;
   * resolves once the server says it reloaded. Its connections stay open.
   */
  reload(options: NatsServerOptions): Promise<void>;
  /** Stops and removes the temp dir. */
  destroy(): Promise<void>;
}

const BINARY = process.env.NATS_SERVER_BIN ?? "nats-server";
const START_DEADLINE_MS = 10_000;
/** What the server logs once a SIGHUP's reload took effect (a config it refuses is logged as an error instead). */
const RELOADED = "Reloaded server configuration";

/** A user's `permissions` entry, led by its comma, or nothing when it is denied nothing. */
function denials(auth: NatsDenials): string {
  const denied = Object.entries({ publish: auth.publishDeny, subscribe: auth.subscribeDeny }).flatMap(
    ([operation, subjects]) => (subjects ? [`${operation}: { deny: ${JSON.stringify(subjects)} }`] : []),
  );
  return denied.length > 0 ? `, permissions: { ${denied.join(", ")} }` : "";
}

function renderConfig(options: NatsServerOptions, dir: string, port: number): string {
  const lines = ["host: 127.0.0.1", `port: ${port}`, `ports_file_dir: "${dir}"`];
  if (options.maxPayload) lines.push(`max_payload: ${options.maxPayload}`);
  if (options.jetstream)
    lines.push(`jetstream { store_dir: "${join(dir, "jetstream")}", max_memory_store: 64MB, max_file_store: 256MB }`);
  const { auth, tls } = options;
  if (auth && "token" in auth) lines.push(`authorization { token: ${JSON.stringify(auth.token)} }`);
  if (auth && "user" in auth) {
    const user = `user: ${JSON.stringify(auth.user)}, password: ${JSON.stringify(auth.password)}${denials(auth)}`;
    lines.push(`authorization { users: [ { ${user} } ] }`);
  }
  if (auth && "users" in auth) {
    const users = auth.users.map(
      ({ user, password, publishAllow, subscribeAllow }) =>
        `{ user: ${JSON.stringify(user)}, password: ${JSON.stringify(password)}, permissions: { ` +
        `publish: { allow: ${JSON.stringify(publishAllow)} }, ` +
        `subscribe: { allow: ${JSON.stringify(subscribeAllow)} } } }`,
    );
    lines.push(`authorization { users: [ ${users.join(", ")} ] }`);
  }
  if (auth && "nkey" in auth)
    lines.push(`authorization { users: [ { nkey: ${JSON.stringify(auth.nkey)}${denials(auth)} } ] }`);
  if (tls) {
    const ca = tls.caFile ? `, ca_file: "${tls.caFile}"` : "";
    lines.push(
      `tls { cert_file: "${tls.certFile}", key_file: "${tls.keyFile}"${ca}, ` +
        `verify: ${tls.verify ? "true" : "false"}, timeout: 5 }`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Resolves when something accepts TCP connections on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/**
 * The port the server chose, from the ports file it writes once it listens (`port: -1`); undefined until it is whole.
 */
async function readPortsFile(dir: string, pid: number): Promise<number | undefined> {
  const name = (await readdir(dir)).find((f) => f.endsWith(`_${pid}.ports`));
  if (!name) return undefined;
  const text = await readFile(join(dir, name), "utf8");
  const url = /"nats"\s*:\s*\[\s*"([^"]+)"/.exec(text)?.[1];
  const port = url ? Number(new URL(url).port) : NaN;
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

async function until<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  exited: () => string | undefined,
): Promise<T> {
  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    const failure = exited();
    if (failure) throw new Error(`nats-server exited while ${what}: ${failure}`);
    if (Date.now() > deadline) throw new Error(`nats-server: timed out ${what}`);
    await Bun.sleep(10);
  }
}

/** Starts a nats-server on a free port chosen by the server itself. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<TestNatsServer> {
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-nats-"));
  const configFile = join(dir, "nats.conf");
  let port = -1;
  /** The port the running server's config file names: -1 (its own choice) at the first start, a reload keeps it. */
  let configPort = port;
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  let stderr = "";

  async function launch(): Promise<void> {
    configPort = port;
    await writeFile(configFile, renderConfig(options, dir, configPort));
    stderr = "";
    const child = Bun.spawn([BINARY, "-c", configFile], { stdout: "ignore", stderr: "pipe" });
    proc = child;
    void (async () => {
      for await (const chunk of child.stderr as ReadableStream<Uint8Array>) stderr += new TextDecoder().decode(chunk);
    })();
    const exited = () =>
      child.exitCode !== null || child.signalCode !== null
        ? stderr.trim().split("\n").slice(-3).join(" | ") || `code ${child.exitCode}`
        : undefined;
    try {
      if (port === -1) port = await until(() => readPortsFile(dir, child.pid), "choosing a port", exited);
      await until(() => accepts(port), `listening on ${port}`, exited);
    } catch (error) {
      // Nobody gets a handle on a server that failed to start: it must not outlive the test.
      await stop();
      throw error;
    }
  }

  async function stop(): Promise<void> {
    const child = proc;
    proc = undefined;
    if (!child) return;
    child.kill("SIGKILL");
    await child.exited;
  }

  try {
    await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const scheme = options.tls ? "tls" : "nats";
  return {
    get port() {
      return port;
    },
    url: `${scheme}://127.0.0.1:${port}`,
    dir,
    get pid() {
      return proc?.pid;
    },
    running: () => proc !== undefined,
    stop,
    async restart(next) {
      await stop();
      if (next) options = next;
      await launch();
    },
    async reload(next) {
      const child = proc;
      if (!child) throw new Error("nats-server: not running, nothing to reload");
      options = next;
      await writeFile(configFile, renderConfig(options, dir, configPort));
      const reloads = () => stderr.split(RELOADED).length - 1;
      const before = reloads();
      child.kill("SIGHUP");
      const exited = () => (child.exitCode !== null || child.signalCode !== null ? stderr.trim() : undefined);
      await until(async () => reloads() > before, "reloading its config", exited);
    },
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
