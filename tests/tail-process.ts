/**
 * `bun run main.ts tail` as a subprocess in tests (tests/tail.test.ts, tests/tail-nats.test.ts): its output collected
 * as it comes, and what those tests share.
 */
import type { Envelope } from "../protocol/envelope.ts";
import type { KubeObject } from "../sdk/model.ts";
import { waitFor, type TestHost } from "../testing/index.ts";
import { MAIN } from "./reliability-process.ts";

/** A running `tail`, its output collected as it comes. */
export class Tail {
  readonly lines: string[] = [];
  stderr = "";
  private partial = "";
  private readonly drained: Promise<unknown>;

  constructor(readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">) {
    this.drained = Promise.all([
      collect(proc.stdout, (text) => {
        const parts = (this.partial + text).split("\n");
        this.partial = parts.pop()!;
        this.lines.push(...parts);
      }),
      collect(proc.stderr, (text) => (this.stderr += text)),
    ]);
  }

  envelopes(): Envelope[] {
    return this.lines.map((line) => JSON.parse(line) as Envelope);
  }

  /** Waits for `check`; a timeout shows what the process printed. */
  async until<T>(check: () => T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
    try {
      return await waitFor(check, timeoutMs, what);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nstdout:\n${this.lines.join("\n")}\nstderr:\n${this.stderr}`);
    }
  }

  /** Exit code and stderr of a process that ends by itself. */
  async exit(): Promise<{ code: number; stderr: string }> {
    const code = await this.proc.exited;
    // The pipes may still hold the last bytes when the exit is reported.
    await this.drained;
    return { code, stderr: this.stderr };
  }

  /** Exit code after a signal, with everything it printed collected. */
  async stop(signal: "SIGINT" | "SIGTERM"): Promise<number> {
    this.proc.kill(signal);
    return (await this.exit()).code;
  }
}

async function collect(stream: ReadableStream<Uint8Array>, take: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) take(decoder.decode(chunk, { stream: true }));
}

/** Runs `tail <args>` with the environment less KUBEMETA_TOKEN, plus `env`. */
export function spawnTail(args: string[], env: Record<string, string> = {}): Tail {
  const base = { ...process.env };
  delete base.KUBEMETA_TOKEN;
  const proc = Bun.spawn([process.execPath, "run", MAIN, "tail", ...args], {
    env: { ...base, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  return new Tail(proc);
}

/** `tail <args>` as spawnTail runs it, killed by the test's cleanups if still running. */
export function trackedTail(cleanups: (() => Promise<unknown>)[]) {
  return (args: string[], env: Record<string, string> = {}): Tail => {
    const t = spawnTail(args, env);
    cleanups.push(async () => {
      t.proc.kill("SIGKILL");
      await t.proc.exited;
    });
    return t;
  };
}

/** Applies and commits the changes (Nodes as `nodes`, the rest as `pods`). */
export async function commit(
  th: TestHost,
  ...changes: ["ADDED" | "MODIFIED" | "DELETED", KubeObject][]
): Promise<void> {
  for (const [type, object] of changes) await th.changes.apply(object.kind === "Node" ? "nodes" : "pods", type, object);
  await th.changes.flush();
}

/** `   12 MODIFIED Pod   default/web-1   node=n1  [node/n1]`: version, type, kind, namespace/name, node, stream. */
export function updateLine(type: string, kind: string, ref: string, rest = ""): RegExp {
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(`^ *\\d+ ${type} +${kind} +${literal(ref)}${rest ? ` +${literal(rest)}` : ""}$`);
}

export const matching = (lines: string[], pattern: RegExp) => lines.filter((line) => pattern.test(line));
