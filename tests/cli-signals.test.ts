/** cli/signals.ts: a signal that came while kubemeta loaded is acted on by a command that releases the signals. */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { exitWithin } from "./reliability-process.ts";

const SIGNALS = join(import.meta.dir, "..", "cli", "signals.ts");
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("a signal whose listener has not run when the signals are released ends the process as by default", async () => {
  const dir = await tempDir();
  dirs.push(dir);
  // As in main.ts while its modules load: the signal is there, its listener runs only once the event loop turns;
  // `--check`, `rbac`, `new-epoch` and `--help` release the signals first thing.
  await Bun.write(
    join(dir, "early.ts"),
    [
      `import { listenEarly } from ${JSON.stringify(SIGNALS)};`,
      "const signals = listenEarly();",
      'process.kill(process.pid, "SIGTERM");',
      "await signals.release();",
      "await Bun.sleep(5_000);",
      'console.log("not ended");',
    ].join("\n"),
  );
  const proc = Bun.spawn([process.execPath, "run", join(dir, "early.ts")], { stdout: "pipe" });
  // Was exit 0 after 5 s, "not ended": the signal dropped with its listener, the command run to its end.
  expect(await exitWithin(proc, 4_000)).toBe(143);
  expect(proc.signalCode).toBe("SIGTERM");
  expect(await new Response(proc.stdout).text()).toBe("");
});
