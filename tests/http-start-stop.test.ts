/**
 * The listener's part in a start and a stop: a port that is taken fails the start before any sink delivers, and a
 * SIGTERM lets the requests in flight finish (within shutdownTimeout) while new connections are refused.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { StartFailed } from "../host/open-store.ts";
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, MAIN, Output, SDK } from "./reliability-process.ts";
import { chunkedBody, rawRequest } from "./security-raw.ts";
import { startReceiver, webhookSink } from "./webhook-receiver.ts";

const dirs: string[] = [];
const children: ReturnType<typeof Bun.spawn>[] = [];
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("a port that is taken fails the start before any sink delivers: the webhook receiver gets nothing", async () => {
  const dir = await tempDir();
  dirs.push(dir);
  // A store with updates a new webhook (from the oldest) would deliver at once.
  const first = await startTestHost({ dir });
  for (let i = 0; i < 5; i++) await first.changes.apply("pods", "ADDED", rawPod(`web-${i}`));
  await first.changes.flush();
  await first.stop();

  const receiver = await startReceiver();
  const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
  try {
    const start = startTestHost({ dir, sinks: [webhookSink(receiver.url)], http: { port: taken.port } });
    expect(await start.catch((error: unknown) => error)).toBeInstanceOf(StartFailed);
    // The start is over and stopped everything it began: nothing can be delivered from here.
    expect(receiver.requests).toEqual([]);
  } finally {
    taken.stop(true);
    await receiver.stop();
  }
});

/** A sink that mounts GET /held, holds its start until globalThis.releaseHeldStart() is called, then mounts /later. */
const HELD_START_SINK = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "held",
  description: "Mounts GET /held, holds its start until globalThis.releaseHeldStart() is called, then mounts /later.",
  schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      ctx.http.get("/held", (c) => c.text("mounted"));
      await new Promise((resolve) => Object.assign(globalThis, { releaseHeldStart: resolve }));
      ctx.http.get("/later", (c) => c.text("mounted later"));
    },
    async stop() {},
  }),
});
`;

test("while a sink starts, what is mounted is answered at once; a route not mounted yet waits for it", async () => {
  const dir = await tempDir();
  dirs.push(dir);
  await Bun.write(join(dir, "held.ts"), HELD_START_SINK);
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line) });
  const starting = startTestHost({ dir, sinks: [{ type: "./held.ts" }], logger });
  const global = globalThis as { releaseHeldStart?: () => void };
  await waitFor(() => global.releaseHeldStart, 5_000, "the sink's start under way");
  const { url } = lines.map((line) => JSON.parse(line)).find((line) => line.msg === "http listening");
  // Connected while the sink still starts: the listener is bound (it was not, before the sinks had started).
  const early = await rawRequest(url, "GET /later HTTP/1.1");
  try {
    // Probes and the host's routes (and a plugin's, once mounted) are answered while the start is held: a probe's
    // timeout (a second) would fail them all the while a sink's start may take (its deadline, 10 s).
    const answers = await Promise.all(
      ["/healthz", "/readyz", "/metrics", "/v1/objects", "/v1/updates", "/held"].map(async (path) => {
        const response = await fetch(new URL(path, url), { signal: AbortSignal.timeout(2_000) });
        return [path, response.status, await response.text()] as const;
      }),
    );
    expect(answers.map(([path, status]) => [path, status])).toEqual([
      ["/healthz", 200],
      ["/readyz", 503],
      ["/metrics", 200],
      // A new store whose first sync is under way, as documented.
      ["/v1/objects", 503],
      ["/v1/updates", 200],
      ["/held", 200],
    ]);
    const bodies = new Map(answers.map(([path, , body]) => [path, body]));
    expect(JSON.parse(bodies.get("/readyz")!)).toEqual({ ready: false, waiting: ["starting"] });
    expect(bodies.get("/held")).toBe("mounted");
    expect(early.text()).toBe("");
  } finally {
    global.releaseHeldStart!();
  }
  const th = await starting;
  try {
    expect(await early.status()).toBe(200);
    await waitFor(() => early.text().endsWith("mounted later"), 5_000, "the plugin's answer");
  } finally {
    early.close();
    await th.stop();
  }
});

const PODS = 3000;

/** PODS pods of about 4 KB each (12 MB of state, past what loopback's socket buffers hold), then synced. */
const BIG_STATE_SOURCE = `
import { defineSource, v } from ${JSON.stringify(SDK)};
export default defineSource({
  type: "big",
  description: "${PODS} pods of about 4 KB.",
  schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      for (let n = 1; n <= ${PODS}; n++) {
        const metadata = { name: "p" + n, namespace: "default", uid: "u" + n, resourceVersion: String(n),
          labels: { padding: "x".repeat(4000) } };
        ctx.changes.apply("big/pods", "ADDED", { kind: "Pod", apiVersion: "v1", metadata });
      }
      ctx.synced();
    },
    async stop() {},
  }),
});
`;

/**
 * A GET over its own connection whose reading pauses itself as its first items come, for the test to resume: all it
 * got, and whether it ended.
 */
function slowReader(url: URL, path: string) {
  const socket: Socket = connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  let ended = false;
  let paused = false;
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    // Paused as its first items come, not once a poll sees them: under load the whole body could arrive meanwhile.
    if (!paused && text().includes("items")) {
      paused = true;
      socket.pause();
    }
  });
  socket.on("close", () => (ended = true));
  socket.on("error", () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
  const text = () => Buffer.concat(chunks).toString();
  return { socket, text, ended: () => ended };
}

type Body = { version: number; items: unknown[] };

/** Whether a new connection to `url` is refused. */
const refused = (url: URL) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });

test("SIGTERM: a /v1/objects in flight completes whole, new connections are refused, the exit is in time", async () => {
  const dir = await tempDir("kubemeta-drain-");
  dirs.push(dir);
  await Bun.write(join(dir, "big.ts"), BIG_STATE_SOURCE);
  const shutdownTimeoutMs = 4_000;
  await Bun.write(
    join(dir, "kubemeta.yaml"),
    [
      "store: { type: libsql, url: file:./kubemeta.db }",
      "sources: [{ type: ./big.ts }]",
      "http: { address: 127.0.0.1, port: 0 }",
      `shutdownTimeout: ${shutdownTimeoutMs}ms`,
    ].join("\n"),
  );
  const child = Bun.spawn([process.execPath, "run", MAIN, "--config", "kubemeta.yaml"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  children.push(child);
  const stdout = new Output(child.stdout);
  const url = new URL((await stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 30_000))[1]!);
  // The version of a state read without its items (no Node here) says when every pod is committed.
  const version = async () => ((await (await fetch(new URL("/v1/objects?kind=Node", url))).json()) as Body).version;
  await waitFor(async () => (await version()) === PODS, 30_000, "every pod committed");

  // One reader that takes its time, and one that never takes the rest: each has had its first bytes, then paused.
  const slow = slowReader(url, "/v1/objects?kind=Pod");
  const stuck = slowReader(url, "/v1/objects?kind=Pod");
  await waitFor(() => slow.text().includes("items") && stuck.text().includes("items"), 10_000, "the first pages");

  const signalled = performance.now();
  child.kill("SIGTERM");
  await waitFor(() => refused(url), 5_000, "new connections to be refused");
  slow.socket.resume();
  await waitFor(slow.ended, shutdownTimeoutMs, "the slow reader's whole answer");
  const body = JSON.parse(chunkedBody(slow.text()) ?? "null") as Body | null;
  expect(body?.items).toHaveLength(PODS);

  expect(await exitWithin(child, shutdownTimeoutMs + 2_000)).toBe(0);
  expect(performance.now() - signalled).toBeLessThan(shutdownTimeoutMs);
  // The reader that took nothing more was cut once the drain's time ran out, never sent a shorter body that parses.
  stuck.socket.resume();
  await waitFor(stuck.ended, 5_000, "the stuck reader's connection closed");
  expect(chunkedBody(stuck.text())).toBeUndefined();
  expect(stdout.lines("http: requests still in flight when the shutdown's time ran out are cut")).toEqual([
    expect.objectContaining({ level: "warn", requests: 1 }),
  ]);
}, 60_000);
