/**
 * README "Lifecycle", the signals other than SIGTERM and SIGINT, on a real `main.ts` serving a `file:` store: each
 * ends it at once, as the system's default does (kill -9 alike: the next start opens the same store, epoch and
 * head kept), SIGHUP under `nohup` is ignored, and so is each of them in a container, where kubemeta is PID 1.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A config of a `file:` store in a new directory, serving on a free loopback port. */
async function config(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  const path = join(dir, "kubemeta.yaml");
  await Bun.write(
    path,
    `cluster: { name: signals }\nstore: { type: libsql, url: "file:${join(dir, "kubemeta.db")}" }\n` +
      "sources: []\nsinks: [{ type: sse }]\nhttp: { address: 127.0.0.1, port: 0 }\n",
  );
  return path;
}

/** `main.ts --config <file>` (under `prefix`, e.g. nohup), once it listens: its `store open` line, its URL. */
async function serve(file: string, prefix: string[] = []) {
  const child = Bun.spawn([...prefix, process.execPath, "run", MAIN, "--config", file], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Output(child.stdout);
  await stdout.waitFor(/"msg":"http listening"/, 15_000);
  const [opened] = stdout.lines("store open");
  const url = String(stdout.lines("http listening")[0]?.url);
  return { child, stdout, opened, url };
}

test.each(["SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const)(
  "%s ends a serving kubemeta at once, as by default; the next start opens the same store",
  async (signal) => {
    const file = await config();
    const first = await serve(file);
    first.child.kill(signal);
    await exitWithin(first.child, 5_000);
    expect(first.child.signalCode).toBe(signal);
    // Nothing of a shutdown ran: ended as kill -9 ends it.
    expect(first.stdout.lines("shutting down")).toEqual([]);

    const second = await serve(file);
    expect(second.opened).toMatchObject({ epoch: first.opened?.epoch, head: first.opened?.head });
    second.child.kill("SIGTERM");
    expect(await exitWithin(second.child, 10_000)).toBe(0);
  },
);

test("under nohup, SIGHUP is ignored: kubemeta serves on, and a SIGTERM stops it (exit 0)", async () => {
  const served = await serve(await config(), ["nohup"]);
  served.child.kill("SIGHUP");
  // Asked after the signal: a default action would have ended the process before it could answer.
  expect((await fetch(new URL("/healthz", served.url))).status).toBe(200);
  expect(served.child.exitCode).toBeNull();
  served.child.kill("SIGTERM");
  expect(await exitWithin(served.child, 10_000)).toBe(0);
  expect(served.stdout.lines("shutting down")).toHaveLength(1);
});

/** Whether this machine lets the tests make a PID namespace (root, or user namespaces allowed). */
const PID_NAMESPACES = Bun.spawnSync(["unshare", "-fp", "--kill-child", "true"]).exitCode === 0;

test.skipIf(!PID_NAMESPACES)(
  "as its PID namespace's first process (a container's), SIGHUP and SIGUSR1 are ignored: it serves on",
  async () => {
    // As the image's ENTRYPOINT runs it: kubemeta is PID 1, whose default-action signals the kernel drops.
    const served = await serve(await config(), ["unshare", "-fp", "--kill-child"]);
    // unshare's child, PID 1 in the namespace: signalled from outside it, as a kubelet or `kill` on the node does.
    const pid = Number((await Bun.$`pgrep -P ${served.child.pid}`.text()).trim());
    process.kill(pid, "SIGHUP");
    process.kill(pid, "SIGUSR1");
    expect((await fetch(new URL("/healthz", served.url))).status).toBe(200);
    process.kill(pid, "SIGTERM");
    expect(await exitWithin(served.child, 10_000)).toBe(0);
    expect(served.stdout.lines("shutting down")).toHaveLength(1);
  },
);
