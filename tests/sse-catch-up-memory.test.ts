/**
 * An SSE catch-up whose subscriber takes nothing waits for room before it reads the log, so the stream holds its
 * buffer alone: no batch of updates read and encoded besides. Held until taken, that batch cost each stream resuming
 * from far back 1–2 MiB more (4–5 MiB in all at 150,000 pods, against the ~1.6 MiB deploy/kubemeta.yaml counted), and
 * 400 of them got kubemeta OOM-killed under its 1536Mi (RELIABILITY.md).
 *
 * The subscriber is a curl process stopped with SIGSTOP, as in sse-slow.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, readFileSync } from "node:fs";
import type { Update } from "../sdk/model.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";

/** Big labels make big envelopes, so the kernel's socket buffers fill fast. */
const LABEL = "x".repeat(16_000);

/** The largest a loopback connection's buffers may grow to (tcp_rmem's and tcp_wmem's maxima), both ends together. */
function socketBuffersMax(): number {
  const max = (file: string) => (existsSync(file) ? Number(readFileSync(file, "utf8").trim().split(/\s+/)[2]) : 0);
  return max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem");
}

/**
 * Twice what the socket buffers can take, in pages of 50: with 1,000 pods (16 MB), a run whose receive buffer grew
 * towards a 32 MiB tcp_rmem took the whole catch-up in, and no read ever waited for room.
 */
const PODS = Math.max(1_000, Math.ceil((2 * socketBuffersMax()) / LABEL.length / 50) * 50);

let th: TestHost | undefined;
let curl: Subprocess | undefined;
afterAll(async () => {
  curl?.kill("SIGKILL");
  await th?.destroy();
});

test("a catch-up whose subscriber takes nothing holds no batch read from the log", async () => {
  th = await startTestHost({ sinks: [{ type: "sse", bufferBytes: 65_536, batchSize: 50 }] });
  const host = th;
  for (let i = 0; i < PODS; i++)
    await host.changes.apply("pods", "ADDED", rawPod(`big-${i}`, { node: "n1", labels: { big: LABEL } }));
  await host.changes.flush();

  // Every batch the log reads, weakly: a collected one is held by nothing, the stream included.
  const log = host.host.log;
  const read = log.read.bind(log);
  let reads = 0;
  let lastReadAt = 0;
  let last: WeakRef<Update[]> | undefined;
  log.read = async (query) => {
    const updates = await read(query);
    reads++;
    lastReadAt = performance.now();
    last = new WeakRef(updates);
    return updates;
  };

  const file = `${host.dir}/stuck.sse`;
  // At 1 MB/s until stopped, so that it has not taken everything already.
  const resume = ["-H", `Last-Event-ID: ${log.epoch}:1`, "--limit-rate", "1M"];
  curl = Bun.spawn(["curl", "-sN", "-o", file, ...resume, `${host.url}/v1/watch?stream=all`], {
    stdout: "ignore",
    stderr: "ignore",
  });
  await waitFor(async () => (await Bun.file(file).exists()) && (await Bun.file(file).size) > 0, 10_000, "curl reads");
  curl.kill("SIGSTOP");
  // Parked: the kernel's buffers and the stream's are full, and the log is read no more.
  await waitFor(() => reads > 0 && performance.now() - lastReadAt > 500, 20_000, "the catch-up to wait for room");
  expect(reads * 50).toBeLessThan(PODS);
  // A WeakRef holds its target through the job that made it: collect in a later one.
  await Bun.sleep(0);
  Bun.gc(true);
  await Bun.sleep(0);
  expect(last!.deref()).toBeUndefined();

  // The catch-up still brings every update, to a subscriber that reads.
  curl.kill("SIGKILL");
  const response = await fetch(`${host.url}/v1/watch?stream=all`, { headers: { "last-event-id": `${log.epoch}:1` } });
  // Counted line by line: tens of MB searched again at each chunk took longer than the catch-up.
  const decoder = new TextDecoder();
  let added = 0;
  let partial = "";
  for await (const chunk of response.body!) {
    const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = lines.pop()!;
    added += lines.filter((line) => line === "event: ADDED").length;
    if (lines.includes("event: SYNCED")) break;
  }
  expect(added).toBe(PODS - 1);
}, 60_000);
