/** The command the README shows to run kubemeta stops on SIGTERM, and leaves no process behind. */
import { afterAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, Output } from "./reliability-process.ts";

const ROOT = join(import.meta.dir, "..");
let dir: string | undefined;
afterAll(() => dir && rm(dir, { recursive: true, force: true }));

/** Pids of the processes whose command line mentions `text`. */
function processesWith(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

test("the README's command exits on SIGTERM, and no bun process remains", async () => {
  const readme = await Bun.file(join(ROOT, "README.md")).text();
  // The quick start's: whatever runs `run main.ts --demo` there runs kubemeta everywhere in the README.
  const launcher = /^(\S[^\n]*?) run main\.ts --demo/m.exec(readme)?.[1];
  expect(launcher).toBeDefined();
  dir = await tempDir("kubemeta-readme-command-");
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    `store: { type: libsql, url: "file:${dir}/kubemeta.db" }\nhttp: { port: 0, address: 127.0.0.1 }\n`,
  );
  const child = Bun.spawn([...launcher!.split(" "), "run", "main.ts", "--config", config], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Output(child.stdout);
  try {
    await stdout.waitFor(/"msg":"http listening"/, 30_000);
    child.kill("SIGTERM");
    expect(await exitWithin(child, 20_000)).toBe(0);
    await waitFor(() => processesWith(config).length === 0, 5_000, "every process of the command to end");
  } finally {
    for (const pid of processesWith(config)) process.kill(pid, "SIGKILL");
  }
}, 60_000);
