/**
 * `bun run main.ts --demo` as a newcomer runs it: no cluster, no config, a fresh working
 * directory. The printed curl command works, its metrics are a serve's (the process guarded, as README's "Bun quirks"
 * says of main.ts), a second demo from the same directory leaves it alone, and SIGTERM stops it cleanly (a second
 * signal logged, as a serve logs it, also while the demo still starts).
 */
import { afterAll, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";
import { json, SseConnection } from "./sse-client.ts";

let dir: string | undefined;
let demo: ReturnType<typeof Bun.spawn> | undefined;
let early: { dir: string; child: ReturnType<typeof Bun.spawn> } | undefined;
let deleted: { dir: string; child: ReturnType<typeof Bun.spawn> } | undefined;

/** `bun run main.ts --demo --port 0`, as a newcomer runs it. */
const DEMO = [process.execPath, "run", MAIN, "--demo", "--port", "0"];

/** The environment a demo runs in from `home`: that HOME, no KUBECONFIG. */
function demoEnv(home: string): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, HOME: home };
  delete env.KUBECONFIG;
  return env;
}
afterAll(async () => {
  demo?.kill("SIGKILL");
  early?.child.kill("SIGKILL");
  deleted?.child.kill("SIGKILL");
  for (const d of [dir, early?.dir, deleted?.dir]) if (d) await rm(d, { recursive: true, force: true });
});

test("--demo serves a simulated cluster: " +
  "the printed watch command streams RESET, the state, SYNCED, live changes; SIGTERM exits 0", async () => {
  dir = await tempDir("kubemeta-demo-");
  const child = Bun.spawn(DEMO, { cwd: dir, env: demoEnv(dir), stdout: "pipe", stderr: "inherit" });
  demo = child;
  const stdout = new Output(child.stdout);
  const match = await stdout.waitFor(/curl -N '(http:\/\/127\.0\.0\.1:\d+)\/v1\/watch\?stream=all'/, 60_000);
  const url = `${match[1]}/v1/watch?stream=all`;
  // What the README says the demo prints is what it prints last, whole (its port there is the default one).
  const end = await stdout.waitFor(/Ctrl-C stops\.\n/, 5_000);
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const printed = /\nwhere the simulated cluster, kubemeta and the store are, then:\n\n```\n([^`]+)```/.exec(
    readme,
  )?.[1];
  expect(printed).toBeDefined();
  // Up to its last line: a log line may follow it on the same stdout.
  const banner = stdout.text.slice(0, end.index + end[0].length);
  expect(banner.endsWith(printed!.replaceAll("http://127.0.0.1:8080", match[1]!))).toBe(true);

  const c = await SseConnection.open(url);
  const initial = await c.takeUntil("SYNCED", 20_000);
  expect(initial[0]!.type).toBe("RESET");
  const kinds = new Set(initial.filter((e) => e.type === "ADDED").map((e) => json(e).kind));
  for (const kind of ["Node", "Namespace", "Pod", "Deployment", "ReplicaSet", "Service", "EndpointSlice"])
    expect(kinds).toContain(kind);
  expect(initial.filter((e) => json(e).kind === "Node")).toHaveLength(20);
  expect(initial.filter((e) => json(e).kind === "Pod").length).toBeGreaterThanOrEqual(280);
  const synced = json<{ version: number }>(initial.at(-1)!).version;

  // The churn goes on: live changes arrive after SYNCED, numbered after it.
  const live = await c.next(10_000);
  expect(["ADDED", "MODIFIED", "DELETED"]).toContain(live.type);
  expect(json<{ version: number }>(live).version).toBeGreaterThan(synced);
  c.close();
  // An exception from a timer would end an unguarded process; guarded, it is counted, from 0.
  const metrics = await (await fetch(url.replace(/\/v1\/watch.*$/, "/metrics"))).text();
  for (const type of ["exception", "rejection"])
    expect(metrics).toContain(`kubemeta_unhandled_errors_total{type="${type}"} 0`);
  const store = join(dir, "data", "demo", "kubemeta.db");
  const inode = statSync(store).ino;

  // A second demo from the same directory leaves the first one's store alone.
  const second = Bun.spawn(DEMO, { cwd: dir, env: demoEnv(dir), stdout: "ignore", stderr: "pipe" });
  expect(await second.exited).toBe(1);
  expect(await new Response(second.stderr).text()).toContain(`another demo (pid ${child.pid}) serves from`);
  expect(statSync(store).ino).toBe(inode);

  // Another signal while it stops (Ctrl-C after a kill; a different one, since two pending SIGTERMs are one) is
  // logged, as README's Lifecycle says of kubemeta, and changes nothing.
  child.kill("SIGTERM");
  child.kill("SIGINT");
  expect(await child.exited).toBe(0);
  await stdout.all();
  const [repeated] = stdout.lines("already shutting down; another signal does not cut it short");
  expect(repeated).toMatchObject({ level: "warn", signal: expect.stringMatching(/^SIG(TERM|INT)$/) });
  // Its pid, once free, may be another process's one day: a stopped demo leaves no claim on its directory.
  expect(await Bun.file(join(dir, "data", "demo", "demo.pid")).exists()).toBe(false);
}, 90_000);

test("a second signal while the demo starts is logged, as after it; once started, the demo stops: exit 0", async () => {
  const home = await tempDir("kubemeta-demo-early-");
  const child = Bun.spawn(DEMO, { cwd: home, env: demoEnv(home), stdout: "pipe", stderr: "inherit" });
  early = { dir: home, child };
  const stdout = new Output(child.stdout);
  // Its pid file is written as its start-up begins (signals are listened for from before): the start is under way.
  const pidFile = Bun.file(join(home, "data", "demo", "demo.pid"));
  await waitFor(() => pidFile.exists(), 60_000, "the demo's pid file");
  child.kill("SIGTERM");
  child.kill("SIGINT");
  expect(await child.exited).toBe(0);
  await stdout.all();
  const [repeated, ...more] = stdout.lines("already shutting down; another signal does not cut it short");
  expect(more).toEqual([]);
  // Both pending at once, the kernel delivers the lower-numbered first (SIGINT, 2, before SIGTERM, 15): either is
  // second.
  expect(repeated).toMatchObject({ level: "warn", shutdownTimeoutMs: 15_000 });
  expect(String(repeated?.signal)).toMatch(/^SIG(TERM|INT)$/);
  // Said while it started: before the banner that ends its start-up.
  const said = stdout.text.indexOf('"msg":"already shutting down');
  expect(said).toBeLessThan(stdout.text.indexOf("Ctrl-C stops."));
}, 90_000);

test("the demo's store deleted under it (its data directory cleaned): it stops, exit 1, saying so", async () => {
  const home = await tempDir("kubemeta-demo-deleted-");
  const child = Bun.spawn(DEMO, { cwd: home, env: demoEnv(home), stdout: "pipe", stderr: "inherit" });
  deleted = { dir: home, child };
  const stdout = new Output(child.stdout);
  await stdout.waitFor(/Ctrl-C stops\.\n/, 60_000);
  await rm(join(home, "data", "demo", "kubemeta.db"));
  expect(await exitWithin(child, 10_000)).toBe(1);
  await stdout.all();
  expect(stdout.lines("stopping: the store was replaced under this process")).toEqual([
    expect.objectContaining({ level: "error", error: expect.objectContaining({ name: "StoreReplacedError" }) }),
  ]);
}, 90_000);
