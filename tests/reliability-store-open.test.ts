/**
 * A store that cannot be opened fails `--check` and start alike, naming the store and why, exit 1: `--check` as it
 * says every config error (under `invalid config:` on stderr, at `store`), start in one error line. So does a port that
 * is taken, at start.
 */
import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync } from "node:fs";
import { chmod, mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { migrate, SCHEMA_VERSION } from "../plugins/stores/libsql/schema.ts";
import { tempDir } from "../testing/index.ts";
import { exitWithin, FILE_MODES_IGNORED, MAIN, OBEYING_FILE_MODES, Output } from "./reliability-process.ts";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function run(url: string, args: string[], port = 0, prepare?: (dir: string) => unknown) {
  const dir = await tempDir("kubemeta-store-open-");
  dirs.push(dir);
  await Bun.write(join(dir, "a-file"), "");
  await prepare?.(dir);
  await Bun.write(
    join(dir, "kubemeta.yaml"),
    `cluster: { name: prod-eu }\nstore: { type: libsql, url: "${url.replace("<dir>", dir)}" }\n` +
      `http: { address: 127.0.0.1, port: ${port} }\n`,
  );
  const { child, stdout, stderr } = spawnIn(dir, args);
  const code = await exitWithin(child, 20_000);
  return { code, stdout: await stdout.all(), stderr: await stderr.all(), dir };
}

/** main.ts on the kubemeta.yaml in `dir`, behind `wrap` (setpriv): the child, and its output as it comes. */
function spawnIn(dir: string, args: string[], wrap: readonly string[] = []) {
  const child = Bun.spawn([...wrap, process.execPath, "run", MAIN, ...args, "--config", "kubemeta.yaml"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  return { child, stdout: new Output(child.stdout), stderr: new Output(child.stderr) };
}

for (const [what, url, cause] of [
  ["a path under a file", "file:<dir>/a-file/kubemeta.db", /a-file\/kubemeta\.db: a file is in the way/],
  ["a file system that takes no database", "file:/sys/kubemeta.db", /\/sys\/kubemeta\.db: SQLite cannot open/],
] as const) {
  test(`${what}: --check says so at store, under invalid config:, and exits 1`, async () => {
    const { code, stdout, stderr } = await run(url, ["--check"]);
    expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
    const [heading, ...issues] = stderr.trimEnd().split("\n");
    expect(heading).toBe("invalid config:");
    expect(issues).toEqual([expect.stringMatching(/^ {2}store: cannot /)]);
    expect(issues[0]).toMatch(cause);
  });

  test(`${what}: start logs one line naming the store and the cause, and exits 1`, async () => {
    const { code, stdout, stderr } = await run(url, []);
    expect(code).toBe(1);
    expect(stderr).toBe("");
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "error", msg: "store cannot be opened", store: "libsql", type: "libsql" });
    expect(line.error.message).toMatch(cause);
  });
}

test("a file: url with a query (?mode=ro): an invalid config at --check and start alike, nothing created", async () => {
  for (const args of [["--check"], []]) {
    const { code, stdout, stderr, dir } = await run("file:<dir>/data/kubemeta.db?mode=ro", args);
    expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
    expect(stderr).toMatch(/^invalid config:\n {2}store\.url: a file: url takes no query \(\?mode\): /);
    expect(existsSync(join(dir, "data"))).toBe(false);
  }
});

test("a file: url that names a directory (a trailing /): an invalid config at --check and start, nothing created", async () => {
  // SQLite opened the path without its slash: a database made 0644 at --check, then a start that failed on `d/-wal`.
  for (const url of ["file:<dir>/data/", "file:<dir>/data%2F", "file:<dir>/data/."])
    for (const args of [["--check"], []]) {
      const { code, stdout, stderr, dir } = await run(url, args);
      expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
      expect(stderr).toMatch(/^invalid config:\n {2}store\.url: a file: url names a file, and .*data.* a directory/);
      expect(existsSync(join(dir, "data"))).toBe(false);
    }
});

test("a symbolic link to a file in a directory that does not exist: --check and start name the link and the directory", async () => {
  // Said as `its directory … cannot be written (missing: its mode or owner; …)`, a directory of the link's target.
  for (const args of [["--check"], []]) {
    const { code, stderr, stdout, dir } = await run("file:<dir>/kubemeta.db", args, 0, (dir) =>
      symlink(join(dir, "gone", "k.db"), join(dir, "kubemeta.db")),
    );
    expect(code).toBe(1);
    const said = args.length > 0 ? stderr : JSON.parse(stdout.trimEnd().split("\n").at(-1)!).error.message;
    expect(said).toContain(
      `${dir}/kubemeta.db: it is a symbolic link to ${dir}/gone/k.db, whose directory ${dir}/gone does not exist`,
    );
    expect(existsSync(join(dir, "gone"))).toBe(false);
  }
});

test("a store's directory that is a symbolic link to nothing (a volume not mounted): --check names the link", async () => {
  // Said as `a file is in the way`, or mkdir's ENOENT, naming neither the link nor where it leads.
  for (const url of ["file:<dir>/data/kubemeta.db", "file:<dir>/data/sub/kubemeta.db"]) {
    const { code, stderr, dir } = await run(url, ["--check"], 0, (dir) =>
      symlink(join(dir, "gone"), join(dir, "data")),
    );
    expect(code).toBe(1);
    expect(stderr).toContain(`${dir}/data is a symbolic link to ${dir}/gone, which does not exist`);
    expect(existsSync(join(dir, "gone"))).toBe(false);
  }
});

test("a store path that is no regular file (a FIFO, a directory): --check and start say what it is, nothing beside", async () => {
  // SQLite said `disk I/O error` of a FIFO (or `/dev/null`) and left its `-journal` beside it.
  for (const [what, make] of [
    ["a FIFO", (path: string) => Bun.spawnSync(["mkfifo", path])],
    ["a directory", (path: string) => mkdir(path)],
  ] as const)
    for (const args of [["--check"], []]) {
      const { code, stderr, stdout, dir } = await run("file:<dir>/kubemeta.db", args, 0, (dir) =>
        make(join(dir, "kubemeta.db")),
      );
      expect(code).toBe(1);
      const said = args.length > 0 ? stderr : JSON.parse(stdout.trimEnd().split("\n").at(-1)!).error.message;
      expect(said).toContain(`cannot open ${dir}/kubemeta.db: it is ${what}, not a regular file`);
      expect(readdirSync(dir).sort()).toEqual(["a-file", "kubemeta.db", "kubemeta.yaml"]);
    }
});

/** The first column of `sql`'s rows in a SQLite file, read without changing it. */
function column<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .query<Record<string, T>, []>(sql)
      .values()
      .map((row) => row[0] as T);
  } finally {
    db.close();
  }
}

/** The tables of a SQLite file, as another application left them or kubemeta changed them. */
const tablesOf = (path: string) =>
  column<string>(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");

test("another application's database is refused, named, and left as it was: --check and start", async () => {
  const refusal = (tables: readonly string[]) =>
    `cannot use ./other.db: it holds another application's tables (${tables.join(", ")}), not a kubemeta store; ` +
    "give kubemeta a database of its own";
  for (const [tables, args] of [
    [["customers"], ["--check"]],
    // A table name kubemeta uses too: refused before any of kubemeta's tables is made.
    [["customers", "meta"], []],
  ] as const) {
    const { code, stdout, stderr, dir } = await run("file:./other.db", [...args], 0, (at) => {
      const db = new Database(join(at, "other.db"));
      for (const table of tables) db.run(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT)`);
      db.close();
    });
    expect(code).toBe(1);
    if (args[0] === "--check") {
      expect({ stdout, stderr }).toEqual({ stdout: "", stderr: `invalid config:\n  store: ${refusal(tables)}\n` });
    } else {
      const lines = stdout.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: "error", msg: "store cannot be opened", store: "libsql" });
      expect(JSON.parse(lines[0]!).error.message).toBe(refusal(tables));
    }
    expect(tablesOf(join(dir, "other.db"))).toEqual([...tables]);
  }
});

test("a new database holding only tools' tables (Litestream's, libSQL's) is a new store, not another's", async () => {
  const { code, stdout, dir } = await run("file:./new.db", ["--check"], 0, (at) => {
    const db = new Database(join(at, "new.db"));
    for (const table of ["_litestream_seq", "_litestream_lock", "libsql_wasm_func_table"])
      db.run(`CREATE TABLE ${table} (id INTEGER)`);
    db.close();
  });
  expect({ code, stdout }).toEqual({ code: 0, stdout: "config is valid\n" });
  expect(tablesOf(join(dir, "new.db"))).toContain("schema_version");
});

test("--check creates a new store, proving it usable", async () => {
  const { code, stdout, dir } = await run("file:./data/kubemeta.db", ["--check"]);
  expect(code).toBe(0);
  expect(stdout).toBe("config is valid\n");
  expect(await Bun.file(join(dir, "data", "kubemeta.db")).exists()).toBe(true);
});

/** The versions in a store's schema_version: the migrations it ran. */
const schemaVersions = (path: string) => column<number>(path, "SELECT version FROM schema_version ORDER BY version");

/** A store an earlier kubemeta made (its schema `version` behind this one's), holding an update's worth. */
async function earlierStore(path: string, version: number): Promise<void> {
  const client = createClient({ url: `file:${path}` });
  try {
    await migrate(client, version);
    await client.execute("INSERT INTO meta (id, epoch, head) VALUES (1, '00112233aabbccdd', 1)");
  } finally {
    client.close();
  }
}

test("--check leaves an earlier kubemeta's store unmigrated and says that a start migrates it", async () => {
  const previous = SCHEMA_VERSION - 1;
  const { code, stdout, stderr, dir } = await run("file:./k.db", ["--check"], 0, (at) =>
    earlierStore(join(at, "k.db"), previous),
  );
  expect({ code, stdout }).toEqual({ code: 0, stdout: "config is valid\n" });
  expect(schemaVersions(join(dir, "k.db"))).toEqual(Array.from({ length: previous }, (_, i) => i + 1));
  expect(stderr.split("\n")[0]).toBe(
    `kubemeta: warning: store: the store has schema version ${previous}, an earlier kubemeta's: the next start of ` +
      `this kubemeta migrates it to ${SCHEMA_VERSION}, after which the earlier kubemeta cannot open it (no rollback ` +
      "on this store)",
  );
});

test("--check reads a store of this schema as a start does: one it cannot read is a config error", async () => {
  const { code, stdout, stderr } = await run("file:./k.db", ["--check"], 0, async (at) => {
    await earlierStore(join(at, "k.db"), SCHEMA_VERSION);
    const db = new Database(join(at, "k.db"));
    db.run("DROP TABLE resume_points");
    db.close();
  });
  expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
  expect(stderr).toMatch(/^invalid config:\n {2}store: .*resume_points/);
});

test("a start migrates an earlier kubemeta's store and says so, once: from then on it cannot open it", async () => {
  const previous = SCHEMA_VERSION - 1;
  const { dir } = await run("file:./k.db", ["--check"], 0, (at) => earlierStore(join(at, "k.db"), previous));
  const migrated = "store migrated from an earlier kubemeta's schema; that kubemeta cannot open it any more";
  for (const expected of [[{ from: previous, to: SCHEMA_VERSION }], []]) {
    const served = spawnIn(dir, []);
    try {
      await served.stdout.waitFor(/"msg":"http listening"/, 20_000);
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await exitWithin(served.child, 20_000)).toBe(0);
    expect(served.stdout.lines(migrated)).toEqual(expected.map((fields) => expect.objectContaining(fields)));
  }
  expect(schemaVersions(join(dir, "k.db"))).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
});

test("a store a newer kubemeta migrated (a rollback): refused at --check and start, naming both schemas", async () => {
  const newer = SCHEMA_VERSION + 1;
  const refusal =
    `cannot use ./k.db: the store has schema version ${newer}, newer than this kubemeta supports ` +
    `(${SCHEMA_VERSION}); upgrade kubemeta or use another store`;
  const { code, stdout, stderr, dir } = await run("file:./k.db", ["--check"], 0, async (at) => {
    await earlierStore(join(at, "k.db"), SCHEMA_VERSION);
    const db = new Database(join(at, "k.db"));
    db.run("INSERT INTO schema_version (version, applied_at) VALUES (?, '2027-01-01T00:00:00.000Z')", [newer]);
    db.close();
  });
  expect({ code, stdout, stderr }).toEqual({ code: 1, stdout: "", stderr: `invalid config:\n  store: ${refusal}\n` });
  const started = spawnIn(dir, []);
  expect(await exitWithin(started.child, 20_000)).toBe(1);
  const lines = (await started.stdout.all()).trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({
    level: "error",
    msg: "store cannot be opened",
    error: { message: refusal },
  });
  expect(schemaVersions(join(dir, "k.db"))).toEqual(Array.from({ length: newer }, (_, i) => i + 1));
});

test("a port that is taken: one error line naming address, port and cause, exit 1, not a stack trace", async () => {
  const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
  try {
    const { code, stdout, stderr } = await run("file:./data/kubemeta.db", [], taken.port);
    expect(code).toBe(1);
    expect(stderr).toBe("");
    const errors = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line))
      .filter((line) => line.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: "http cannot listen", address: "127.0.0.1", port: taken.port });
    expect(errors[0].error.message).toMatch(/in use/);
  } finally {
    taken.stop(true);
  }
});

/**
 * A store made, then `spoil`ed (as root) so that kubemeta may not write it: a start and new-epoch are refused, the
 * cause after the store's name matching `said`, and leave nothing beside the store; after `fix`, the next start serves
 * it (and stops cleanly).
 */
async function refusedUntilFixed(spoil: (data: string) => Promise<void>, said: RegExp, fix: typeof spoil) {
  const { code, dir } = await run("file:./data/kubemeta.db", ["--check"]);
  expect(code).toBe(0);
  const data = join(dir, "data");
  await spoil(data);
  const before = readdirSync(data).sort();
  const refusal = `cannot open \\./data/kubemeta\\.db: ${said.source}`;
  const refused = spawnIn(dir, [], OBEYING_FILE_MODES);
  expect(await exitWithin(refused.child, 20_000)).toBe(1);
  await refused.stdout.all();
  const [line] = refused.stdout.lines("store cannot be opened");
  expect((line?.error as { message?: string } | undefined)?.message).toMatch(new RegExp(`^${refusal}`));
  const renewal = spawnIn(dir, ["new-epoch"], OBEYING_FILE_MODES);
  expect(await exitWithin(renewal.child, 20_000)).toBe(1);
  expect(await renewal.stderr.all()).toMatch(new RegExp(`^kubemeta: new-epoch: ${refusal}`));
  expect(readdirSync(data).sort()).toEqual(before);

  await fix(data);
  const served = spawnIn(dir, [], OBEYING_FILE_MODES);
  try {
    await served.stdout.waitFor(/"msg":"writing to the store"/, 20_000);
  } finally {
    served.child.kill("SIGTERM");
  }
  expect(await exitWithin(served.child, 20_000)).toBe(0);
}

test.skipIf(FILE_MODES_IGNORED)(
  "a store file read-only to kubemeta (0444): start and new-epoch refused naming it, nothing left; then served",
  () =>
    refusedUntilFixed(
      (data) => chmod(join(data, "kubemeta.db"), 0o444),
      /kubemeta cannot write it \(EACCES: /,
      (data) => chmod(join(data, "kubemeta.db"), 0o644),
    ),
  60_000,
);

test.skipIf(FILE_MODES_IGNORED)(
  "a store whose directory kubemeta may not write: start and new-epoch refused naming the directory, then served",
  () =>
    refusedUntilFixed(
      (data) => chmod(data, 0o555),
      /its directory \.\/data cannot be written \(EACCES: /,
      (data) => chmod(data, 0o755),
    ),
  60_000,
);

test.skipIf(FILE_MODES_IGNORED)(
  "a read-only -shm left beside a writable store (by an earlier kubemeta): refused naming it and what to do",
  () =>
    refusedUntilFixed(
      async (data) => {
        await Bun.write(join(data, "kubemeta.db-shm"), new Uint8Array(32_768));
        await chmod(join(data, "kubemeta.db-shm"), 0o444);
      },
      /\.\/data\/kubemeta\.db-shm cannot be written \(EACCES: .*delete it/,
      (data) => rm(join(data, "kubemeta.db-shm")),
    ),
  60_000,
);
