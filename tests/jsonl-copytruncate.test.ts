/**
 * The `jsonl` sink's file rotated by copytruncate (logrotate's), as a real process truncates it at any step of a
 * write: what each copy holds is whole lines, with no empty line and no NUL byte.
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { exitWithin } from "./reliability-process.ts";

interface Rotated {
  copies: number;
  emptyLines: number;
  nuls: number;
}

/**
 * tests/jsonl-file-host.ts appending `count` pods (about 2.5 KB a line) in batches of `batchSize`, under a file-size
 * limit of `limitKiB` when given (a full disk: a write past it is cut short, EFBIG), while
 * tests/copytruncate-rotator.ts rotates the file with `rotator`'s settings until it has made `ROTATIONS` copies.
 */
async function rotateUnder(options: {
  count: number;
  batchSize: number;
  limitKiB?: number;
  rotator: Record<string, string>;
}): Promise<Rotated> {
  const dir = await tempDir();
  const file = join(dir, "updates.jsonl");
  const store = startHranaServer({ path: join(dir, "store.db") });
  const limit = options.limitKiB === undefined ? "" : `trap '' XFSZ; ulimit -S -f ${options.limitKiB}; `;
  const host = Bun.spawn(
    ["bash", "-c", `${limit}exec "$0" "$1"`, process.execPath, join(import.meta.dir, "jsonl-file-host.ts")],
    {
      env: {
        ...process.env,
        COUNT: String(options.count),
        BATCH_SIZE: String(options.batchSize),
        FILE: file,
        STORE_URL: store.url,
      },
      stdout: "ignore",
      stderr: "inherit",
    },
  );
  const rotator = Bun.spawn([process.execPath, join(import.meta.dir, "copytruncate-rotator.ts")], {
    env: { ...process.env, FILE: file, ...options.rotator },
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    await exitWithin(rotator, 30_000);
    return JSON.parse(await new Response(rotator.stdout).text()) as Rotated;
  } finally {
    rotator.kill("SIGKILL");
    host.kill("SIGTERM");
    await exitWithin(host, 20_000).finally(async () => {
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
  }
}

test("copytruncate between the size read and the last byte read: no empty first line", async () => {
  // A batch a line, each its own open, size, last byte and write; the truncate lands anywhere in 3 ms of them.
  const rotated = await rotateUnder({
    count: 2_000,
    batchSize: 1,
    rotator: { ROTATE_AT: "1", MAX_WAIT_US: "3000", ROTATIONS: "300", DEADLINE_MS: "20000" },
  });
  expect(rotated.copies).toBeGreaterThan(100);
  expect(rotated.emptyLines).toBe(0);
}, 60_000);

test("copytruncate between a write cut short (a full disk) and its cut-back: no NUL bytes", async () => {
  // Three lines fill the 8 KiB limit: the third is cut short, and the file is rotated the moment it is full.
  const rotated = await rotateUnder({
    count: 500,
    batchSize: 1,
    limitKiB: 8,
    rotator: { ROTATE_AT: "8192", ROTATIONS: "30", DEADLINE_MS: "15000" },
  });
  expect(rotated.copies).toBe(30);
  expect(rotated.nuls).toBe(0);
}, 60_000);
