/**
 * A `file:` store kubemeta creates is its user's alone, whatever the umask: it holds the cluster's metadata that
 * `http.tokens` guard. What exists already (a volume's directory, a store copied in place) keeps its mode. A symbolic
 * link at the store's path is followed as SQLite follows it: the file it names made privately, its WAL and index
 * (beside that file) watched as the store's.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { chmod, mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { isStoreReplaced, type StoreReplacedError } from "../sdk/contract.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";
import { batch, libsqlOnFile, run } from "./store-libsql-setup.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/**
 * main.ts under umask 000 on a store at `<dir>/<store>`, running until its store is open, its WAL and index made
 * (beside `<dir>/<opened>`, the file SQLite opened); the modes of that file, its WAL and index.
 */
async function runUnderUmask0(prepare: (dir: string) => Promise<unknown>, store: string, opened = store) {
  const dir = await tempDir("kubemeta-modes-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const api = await startTestApiServer();
  cleanups.push(() => api.stop());
  await api.writeKubeconfig(join(dir, "kubeconfig"), "token");
  await prepare(dir);
  const config = {
    cluster: { name: "modes" },
    store: { type: "libsql", url: `file:${join(dir, store)}` },
    sources: [{ type: "kubernetes", kubeconfig: join(dir, "kubeconfig") }],
    http: { address: "127.0.0.1", port: 0 },
  };
  await Bun.write(join(dir, "kubemeta.yaml"), JSON.stringify(config));
  const child = Bun.spawn(
    ["sh", "-c", `umask 000 && exec "$0" run "$1" --config kubemeta.yaml`, process.execPath, MAIN],
    {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  cleanups.push(() => child.kill("SIGKILL"));
  const stdout = new Output(child.stdout);
  await stdout.waitFor(/"msg":"kubernetes source synced"/, 20_000);
  const path = join(dir, opened);
  await waitFor(() => existsSync(`${path}-wal`) && existsSync(`${path}-shm`), 5_000, "the WAL and its index");
  const modes = [path, `${path}-wal`, `${path}-shm`].map(mode);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 20_000)).toBe(0);
  return { dir, modes };
}

test("a new store: its directories 0700, the database, its WAL and index 0600, under umask 000", async () => {
  const { dir, modes } = await runUnderUmask0(async () => {}, "data/store/kubemeta.db");
  expect([mode(join(dir, "data")), mode(join(dir, "data/store"))]).toEqual(["700", "700"]);
  expect(modes).toEqual(["600", "600", "600"]);
}, 40_000);

test("a directory that exists keeps its mode; a database that exists keeps its own, and its WAL takes it", async () => {
  const { dir, modes } = await runUnderUmask0(async (dir) => {
    await mkdir(join(dir, "data"));
    await chmod(join(dir, "data"), 0o750);
    await Bun.write(join(dir, "data/kubemeta.db"), "");
    await chmod(join(dir, "data/kubemeta.db"), 0o640);
  }, "data/kubemeta.db");
  expect(mode(join(dir, "data"))).toBe("750");
  expect(modes).toEqual(["640", "640", "640"]);
}, 40_000);

test("a link to nothing at the store's path: the file it names, its WAL and index 0600, under umask 000", async () => {
  const { modes } = await runUnderUmask0(
    async (dir) => {
      await mkdir(join(dir, "data"));
      await mkdir(join(dir, "volume"));
      await symlink("../volume/kubemeta.db", join(dir, "data/kubemeta.db"));
    },
    "data/kubemeta.db",
    "volume/kubemeta.db",
  );
  expect(modes).toEqual(["600", "600", "600"]);
}, 40_000);

test("the WAL beside the file a link at the store's path names is watched: deleted, a commit refused", async () => {
  const dir = await tempDir();
  await mkdir(join(dir, "volume"));
  await symlink("volume/kubemeta.db", join(dir, "kubemeta.db"));
  const told: StoreReplacedError[] = [];
  const store = libsqlOnFile(join(dir, "kubemeta.db"), told);
  cleanups.push(() => store.stop());
  await store.start();
  await store.lead();
  await store.commit(batch(run(1, 3)));
  await rm(join(dir, "volume/kubemeta.db-wal"));
  expect(isStoreReplaced(await store.commit(batch(run(4, 6))).catch((error: unknown) => error))).toBe(true);
  expect(told.map((error) => error.message)).toEqual([expect.stringContaining("volume/kubemeta.db-wal was deleted")]);
});
