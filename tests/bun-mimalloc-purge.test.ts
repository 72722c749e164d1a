/**
 * Bun quirk: Bun's allocator (mimalloc) gives freed memory back to the kernel within a fraction of a second (left
 * unset, MIMALLOC_PURGE_DELAY behaves here as 100 ms does), so a process that allocates and drops buffers at a steady
 * rate (a response body's chunks, a watch's lines) takes a page fault on every page of them, again and again. On a
 * virtual machine whose page faults are dear (~9 µs each on this project's: 2.4 s to touch 1 GiB afresh) that was a
 * third of the initial sync's CPU. The image sets MIMALLOC_PURGE_DELAY=10000 (Containerfile): what is freed is reused
 * for 10 s before it goes back.
 */
import { expect, test } from "bun:test";

/** Allocates, fills and drops 256 MiB in 256 KiB buffers (a fetch body's chunk size), round after round. */
const CHURN = `
import { readFileSync } from "node:fs";
const faults = () => Number(readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ")[7]);
async function churn() {
  let held = [];
  for (let i = 0; i < 1024; i++) held.push(new Uint8Array(256 << 10).fill(1));
  held = [];
  await Bun.sleep(50);
}
for (let i = 0; i < 8; i++) await churn();
const before = faults();
for (let i = 0; i < 6; i++) await churn();
console.log(JSON.stringify({ faultsPerRound: (faults() - before) / 6 }));
`;

async function faultsPerRound(purgeDelay: string | undefined): Promise<number> {
  const { MIMALLOC_PURGE_DELAY: _, ...inherited } = process.env;
  const env = purgeDelay === undefined ? inherited : { ...inherited, MIMALLOC_PURGE_DELAY: purgeDelay };
  const child = Bun.spawn([process.execPath, "-e", CHURN], { env, stdout: "pipe" });
  const { faultsPerRound } = JSON.parse(await new Response(child.stdout).text()) as { faultsPerRound: number };
  expect(await child.exited).toBe(0);
  return faultsPerRound;
}

test("Bun quirk: freed memory soon goes back to the kernel; MIMALLOC_PURGE_DELAY=10000 keeps it to reuse", async () => {
  const containerfile = await Bun.file(new URL("../Containerfile", import.meta.url)).text();
  const imageDelay = /\bMIMALLOC_PURGE_DELAY=(\d+)/.exec(containerfile)?.[1];
  expect(imageDelay).toBe("10000");
  const byDefault = await faultsPerRound(undefined);
  const asImaged = await faultsPerRound(imageDelay);
  // 256 MiB is 65,536 pages. Measured here, once the heap has settled: 11,000–18,000 faults a round by default
  // (each round took ~500 ms, ten times as long), ~180 with the image's setting.
  expect(byDefault).toBeGreaterThan(5_000);
  expect(asImaged).toBeLessThan(byDefault / 5);
}, 60_000);
