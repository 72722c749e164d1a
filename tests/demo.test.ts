/**
 * `bun run main.ts --demo` as a newcomer runs it: no cluster, no config, a fresh working
 * directory. The printed curl command works, and SIGTERM stops it cleanly.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { json, SseConnection } from "./sse-client.ts";

const MAIN = join(import.meta.dir, "..", "main.ts");
let dir: string | undefined;
let demo: ReturnType<typeof Bun.spawn> | undefined;
afterAll(async () => {
  demo?.kill("SIGKILL");
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Reads stdout until `pattern` matches; fails on exit or after the deadline. */
async function readUntil(
  stdout: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  const deadline = Date.now() + timeoutMs;
  let text = "";
  try {
    for (;;) {
      const match = pattern.exec(text);
      if (match) return match;
      const left = deadline - Date.now();
      const chunk = await Promise.race([reader.read(), Bun.sleep(Math.max(0, left)).then(() => undefined)]);
      if (!chunk) throw new Error(`no match for ${pattern} within ${timeoutMs} ms; output so far:\n${text}`);
      if (chunk.done) throw new Error(`the demo exited before printing ${pattern}; output:\n${text}`);
      text += decoder.decode(chunk.value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}

test("--demo serves a simulated cluster: " +
  "the printed watch command streams RESET, the state, SYNCED, live changes; SIGTERM exits 0", async () => {
  dir = await tempDir("kubemeta-demo-");
  const env = { ...process.env };
  delete env.KUBECONFIG;
  const child = Bun.spawn([process.execPath, "run", MAIN, "--demo", "--port", "0"], {
    cwd: dir,
    env: { ...env, HOME: dir },
    stdout: "pipe",
    stderr: "inherit",
  });
  demo = child;
  const match = await readUntil(child.stdout, /curl -N '(http:\/\/127\.0\.0\.1:\d+\/v1\/watch\?stream=all)'/, 60_000);
  const url = match[1]!;

  const c = await SseConnection.open(url);
  const initial = await c.takeUntil("SYNCED", 20_000);
  expect(initial[0]!.type).toBe("RESET");
  const kinds = new Set(initial.filter((e) => e.type === "ADDED").map((e) => json(e).kind));
  for (const kind of ["Node", "Namespace", "Pod", "Deployment", "ReplicaSet", "Service", "EndpointSlice"])
    expect(kinds).toContain(kind);
  expect(initial.filter((e) => json(e).kind === "Node")).toHaveLength(20);
  expect(initial.filter((e) => json(e).kind === "Pod").length).toBeGreaterThanOrEqual(280);
  const synced = json<{ version: number }>(initial.at(-1)!).version;

  // The churn goes on: live changes arrive after SYNCED, numbered after it.
  const live = await c.next(10_000);
  expect(["ADDED", "MODIFIED", "DELETED"]).toContain(live.type);
  expect(json<{ version: number }>(live).version).toBeGreaterThan(synced);
  c.close();
  expect(await Bun.file(join(dir, "data", "demo", "kubemeta.db")).exists()).toBe(true);

  child.kill("SIGTERM");
  expect(await child.exited).toBe(0);
}, 90_000);
