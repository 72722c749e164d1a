/**
 * `kubemeta tail` whose stdout nobody reads (a pipe whose reader is stuck), over SSE and NATS: what it could not write
 * is not held in memory without bound, and nothing is lost once the reader reads.
 */
import { afterEach, expect, test } from "bun:test";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { CLUSTER, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { MAIN } from "./reliability-process.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resident memory of a process, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
}

/** What the reader end of a FIFO holds now, nothing once it is empty (non-blocking). */
function readNow(fd: number): string {
  const buffer = Buffer.alloc(1 << 16);
  let text = "";
  for (;;) {
    try {
      const n = readSync(fd, buffer);
      if (n === 0) return text;
      text += buffer.toString("utf8", 0, n);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EAGAIN") return text;
      throw error;
    }
  }
}

const PODS = 3_000;
/** What tail may grow by while nobody reads it (bytes). */
const BOUND = 40 << 20;
/** About 8 KB of labels a pod: 3,000 pods are some 25 MB of JSON lines, far past what a pipe and a socket hold. */
const labels = (i: number) =>
  Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`label-${k}`, `${i}-${k}-`.padEnd(100, "x")]));

/**
 * `tail <args> --json` (stream all) whose stdout is a FIFO nobody reads while PODS large pods are committed: its
 * memory stays within 16 MB of where it was; `overflowed` waits for what bounds it at the server, if anything. Then
 * read to the end: every version once, in order, from the snapshot to the head. Returns what tail said on stderr, and
 * the bytes of the lines it printed.
 */
async function unreadWhileFlooded(
  th: TestHost,
  args: string[],
  overflowed?: () => unknown,
): Promise<{ stderr: string; printed: number }> {
  const dir = await tempDir("kubemeta-tail-backlog-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await th.changes.apply("pods", "ADDED", rawPod("web-0", { node: "n1" }));
  await th.changes.flush();

  const fifo = join(dir, "stdout");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  // The reader's end held open, and not read until the flood is over.
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  cleanups.push(() => closeSync(reader));
  const writer = openSync(fifo, constants.O_WRONLY);
  const tail = Bun.spawn([process.execPath, "run", MAIN, "tail", ...args, "--json"], {
    stdin: "ignore",
    stdout: writer,
    stderr: "pipe",
  });
  closeSync(writer);
  cleanups.push(async () => {
    tail.kill("SIGKILL");
    await tail.exited;
  });
  let stderr = "";
  void (async () => {
    for await (const chunk of tail.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  await waitFor(() => stderr.includes("SYNCED"), 20_000, "tail in sync");
  const before = await rss(tail.pid);

  let peak = before;
  for (let i = 1; i <= PODS; i++) {
    await th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1", labels: labels(i) }));
    if (i % 100 === 0) {
      await th.changes.flush();
      peak = Math.max(peak, await rss(tail.pid));
    }
  }
  await th.changes.flush();
  const head = th.host.log.head();
  // Some 90 MB more without the bound: every line held in memory. With it, what one read or replay chunk holds and
  // the heap's own growth (12 to 17 MiB seen): a bound well under the unbounded growth, not at its edge.
  expect(peak - before).toBeLessThan(BOUND);
  if (overflowed) await waitFor(overflowed, 20_000, "the server's bound reached");
  expect((await rss(tail.pid)) - before).toBeLessThan(BOUND);

  let text = "";
  let printed = 0;
  const versions: number[] = [];
  await waitFor(
    () => {
      const read = readNow(reader);
      printed += Buffer.byteLength(read);
      text += read;
      const lines = text.split("\n");
      text = lines.pop()!;
      for (const line of lines) versions.push((JSON.parse(line) as Envelope).version);
      return versions.at(-1) === head;
    },
    30_000,
    "every update read",
  );
  expect(versions).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  return { stderr, printed };
}

test(
  "over SSE, a pipe nobody reads: tail's memory stays bounded (the server's OVERFLOW, a resume), nothing is lost",
  async () => {
    const th = await startTestHost({ sinks: [{ type: "sse" }] });
    cleanups.push(() => th.destroy());
    // Past what the pipe, the sockets and the sse sink's buffer hold: the server closes the stream (OVERFLOW), which
    // tail reads once its stdout drains.
    const overflows = () => th.host.metrics.render().match(/^kubemeta_sse_overflows_total (\d+)$/m)?.[1] === "1";
    const { stderr } = await unreadWhileFlooded(th, ["--url", th.url], overflows);
    expect(stderr).toContain("kubemeta closed the stream: this client fell too far behind it (OVERFLOW");
  },
  SLOW_MS * 2,
);

test(
  "over NATS, a pipe nobody reads: tail's memory stays bounded (messages dropped, then a replay), nothing is lost",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server);
    cleanups.push(() => th.destroy());
    // Every replay chunk kubemeta sends tail, whether tail still listens or cut that replay as its stdout backed up.
    const spy = await connect({ servers: server.url });
    cleanups.push(() => spy.close());
    let replayed = 0;
    // Past four times the backlog no more is counted: what is wrong shows as well without receiving gigabytes here.
    const spied = spy.subscribe("_INBOX.>", {
      callback: (_, msg) => {
        replayed += msg.data.length;
        if (replayed > 100 << 20) spied.unsubscribe();
      },
    });
    await spy.flush();
    const { printed } = await unreadWhileFlooded(th, ["--nats", server.url, "--cluster", CLUSTER]);
    await spy.flush();
    // Each replay a drained stdout asked went up to the head, cut a pipe's worth later: the backlog was sent some
    // 100 times over (2.3 GB for 23 MB). Asked in windows that go on through a pause, it is sent about once.
    expect(replayed).toBeLessThan(1.5 * printed);
  },
  SLOW_MS * 2,
);
