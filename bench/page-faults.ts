/**
 * What touching fresh memory costs on this machine: the one number in which two machines of the same kind (2 cores,
 * 24 GiB) were seen to differ many times over, and with it every memory-heavy benchmark (README, Benchmarks). Each
 * round takes 1 GiB the process has not touched yet and writes one byte per 4 KiB page. How often kubemeta touches
 * memory afresh, bench/sync.ts counts (its page faults); tests/bun-mimalloc-purge.test.ts says what the image sets.
 *
 *   bun bench/page-faults.ts
 */
import { machine, minorFaults } from "./processes.ts";

const PAGE = 4096;
const SIZE = 1 << 30;

console.log(machine());
for (let round = 1; round <= 3; round++) {
  const before = await minorFaults(process.pid);
  const started = performance.now();
  const memory = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i += PAGE) memory[i] = 1;
  const ms = performance.now() - started;
  const count = (await minorFaults(process.pid)) - before;
  console.log(
    `round ${round}: 1 GiB touched afresh in ${ms.toFixed(0)} ms: ${count} page faults, ` +
      `${((ms * 1000) / Math.max(1, count)).toFixed(1)} µs each`,
  );
}
