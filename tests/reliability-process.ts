/** kubemeta and other Bun children as real processes in tests: output read as it comes, waited on with deadlines. */
import { join } from "node:path";

export const MAIN = join(import.meta.dir, "..", "main.ts");
export const SDK = join(import.meta.dir, "..", "sdk", "index.ts");

/** `ENV` of the Containerfile: what the image sets for the process. */
export const IMAGE_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  (await Bun.file(join(import.meta.dir, "..", "Containerfile")).text())
    .split("\n")
    .filter((line) => line.startsWith("ENV "))
    .flatMap((line) => line.slice(4).trim().split(/\s+/))
    .map((pair) => {
      const [key, value] = pair.split("=");
      return [key!, value ?? ""];
    }),
);

/**
 * The allocator's settings the image gives kubemeta: every `MIMALLOC_*` of IMAGE_ENV (README "Memory in a container"
 * says why), for tests and benches that run kubemeta as deployed.
 */
export const IMAGE_ALLOCATOR: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(IMAGE_ENV).filter(([name]) => name.startsWith("MIMALLOC_")),
);

/**
 * setpriv's arguments, when the tests run as root, to run kubemeta as root without the capabilities that override
 * file permissions: denied as any owner would be, while it still reads the checkout wherever it lies (another user,
 * nobody, may not reach a checkout under a private directory). Empty when the tests run as another user.
 */
export const OBEYING_FILE_MODES: readonly string[] =
  process.getuid?.() === 0 ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] : [];
/** Whether OBEYING_FILE_MODES cannot be had here (root without setpriv): tests of file modes skip. */
export const FILE_MODES_IGNORED = OBEYING_FILE_MODES.length > 0 && Bun.which("setpriv") === null;

/** Everything a stream has written so far, read in the background. */
export class Output {
  text = "";
  private readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.text += decoder.decode(chunk, { stream: true });
    })();
  }

  /** Everything, once the stream has ended. */
  async all(): Promise<string> {
    await this.done;
    return this.text;
  }

  /** The first match of `pattern`; fails after the deadline, or when the stream ends without one. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.done.then(() => (ended = true));
    for (;;) {
      const match = pattern.exec(this.text);
      if (match) return match;
      if (ended) throw new Error(`the stream ended without ${pattern}; it said:\n${this.text}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms; output so far:\n${this.text}`);
      await Bun.sleep(20);
    }
  }

  /** Every JSON log line whose msg is `msg`. */
  lines(msg: string): Record<string, unknown>[] {
    return this.text
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === msg);
  }
}

/** A sink or source plugin's module, loaded by path: its start runs `start`, its stop logs `<kind> stopped`. */
export const plugin = (kind: "Sink" | "Source", start: string) => `
import { define${kind}, v } from ${JSON.stringify(SDK)};
export default define${kind}({
  type: "${kind.toLowerCase()}", description: "", schema: v.strictObject({}),
  create: (_config, ctx) => ({ async start() { ${start} }, async stop() { ctx.logger.info("${kind} stopped"); } }),
});`;

/** Resolves with the exit code, or fails after the deadline. */
export async function exitWithin(child: { exited: Promise<number> }, timeoutMs: number): Promise<number> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the process did not exit within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([child.exited, late]).finally(() => clearTimeout(timer));
}

/** `bun <args>` run to its end with `env` (this process's by default): its exit code and stdout; stderr passes on. */
export async function runBun(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<{ code: number; stdout: string }> {
  const child = Bun.spawn([process.execPath, ...args], { env, stdout: "pipe", stderr: "inherit" });
  const [code, stdout] = await Promise.all([child.exited, new Response(child.stdout).text()]);
  return { code, stdout };
}

/** `main.ts <args>` run to its end: exit code and everything it wrote. */
export async function runMain(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, "run", MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

/** `main.ts <args>` running, its output read as it comes. */
export function spawnMain(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const child = Bun.spawn([process.execPath, "run", MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { child, stdout: new Output(child.stdout), stderr: new Output(child.stderr) };
}

/** A test libSQL server (./hrana-server-cli.ts) as a process of its own: one that can be killed, stopped, restarted. */
export async function spawnHranaServer(
  db: string,
  options: { port?: number; token?: string; crashOnCommit?: "before" | "after" } = {},
) {
  const args = [process.execPath, join(import.meta.dir, "hrana-server-cli.ts"), "--db", db];
  args.push("--port", String(options.port ?? 0));
  if (options.token) args.push("--token", options.token);
  if (options.crashOnCommit) args.push("--crash-on-commit", options.crashOnCommit);
  const child = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const stderr = new Output(child.stderr);
  const line = await new Output(child.stdout).waitFor(/^\{.*\}$/m, 10_000).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\nstderr: ${stderr.text}`);
  });
  const { url, port } = JSON.parse(line[0]) as { url: string; port: number };
  return {
    url,
    port,
    child,
    async stop() {
      child.kill("SIGTERM");
      await exitWithin(child, 5_000);
    },
  };
}
