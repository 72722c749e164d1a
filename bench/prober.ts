/**
 * The `/healthz` prober of bench/processes.ts (probeHealth), in a process of its own: probed from the benchmark's
 * process, the probes waited out that process's own pauses too (on S a 430 ms probe fell on a 430 ms pause of the
 * benchmark's process while kubemeta's loop was never 50 ms late): they measured the benchmark, not kubemeta.
 *
 *   bun bench/prober.ts <kubemeta's URL> <every ms>
 *
 * Requests /healthz every `every` ms, one at a time, until its standard input ends (probeHealth's stop(), or the
 * benchmark gone); then prints the latencies of the probes that were answered as one JSON array. Probes before the
 * listener is up fail and are not counted; one not answered within 30 s counts as 30 s.
 */
import { parseArgs } from "node:util";

const [url, every] = parseArgs({ allowPositionals: true }).positionals;
const everyMs = Number(every);
if (!url || !(everyMs > 0)) throw new Error("usage: bun bench/prober.ts <url> <every ms>");

/** A probe not answered by then counts as taking that long: a kubemeta stopped must not hold the bench's stop(). */
const PROBE_TIMEOUT_MS = 30_000;
const latencies: number[] = [];
let running = true;
const stdinEnded = (async () => {
  for await (const _ of Bun.stdin.stream());
  running = false;
})();
while (running) {
  const due = performance.now();
  const answered = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) }).then(
    (response) => response.ok,
    (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
  );
  if (answered) latencies.push(performance.now() - due);
  await Promise.race([Bun.sleep(Math.max(0, everyMs - (performance.now() - due))), stdinEnded]);
}
console.log(JSON.stringify(latencies));
