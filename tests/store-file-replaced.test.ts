/**
 * The `file:` store's file deleted, or replaced by another store's copy, under a running kubemeta (an operator cleaning
 * the data directory, a backup restored in place). SQLite goes on with the file it opened: kubemeta served and
 * committed as before, everything lost at the next start, while a connection opened later read the other database.
 * Now it stops: exit 1 within seconds, one error line naming the path; a restart serves what the path holds now, and
 * a consumer of the old store gets a RESET. The store itself commits nothing more to the file it opened once it found
 * it gone, and serves no read that a connection opened since may have made on the other file. Found during a shutdown,
 * before the store closes, it exits 1 all the same.
 */
import { afterEach, expect, test } from "bun:test";
import { chmod, copyFile, link, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { isStoreReplaced, type Store, type StoreReplacedError } from "../sdk/contract.ts";
import { startChurn } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { clusterChecks } from "./cluster-checks.ts";
import { cleanups, runCleanups, setup, type Kubemeta } from "./faults-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { exitWithin, FILE_MODES_IGNORED, OBEYING_FILE_MODES } from "./reliability-process.ts";
import { batch, libsqlOnFile, run } from "./store-libsql-setup.ts";
import { json, SseConnection } from "./sse-client.ts";

afterEach(runCleanups);

const STOPPING = "stopping: the store was replaced under this process";

/** kubemeta's epoch and version, as /v1/objects answers them. */
async function position(url: string): Promise<{ epoch: string; version: number }> {
  return (await (await fetch(`${url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
}

/** A SSE consumer of everything, its last id once the stream ended (kubemeta stopped). */
async function follow(url: string) {
  const sse = await SseConnection.open(`${url}/v1/watch?stream=all`);
  cleanups.push(() => sse.close());
  await sse.takeUntil("SYNCED", 20_000);
  return {
    lastId: async () => {
      await sse.ended;
      return sse.lastEventId;
    },
  };
}

/** A churn started, once it has committed updates past `head`: the deletion comes in the midst of commits. */
async function churning(env: { server: Parameters<typeof startChurn>[0]; url: string }, head: number) {
  const churn = startChurn(env.server, { perSecond: 40 });
  cleanups.push(() => churn.stop());
  await waitFor(async () => (await position(env.url)).version > head, 10_000, "the churn's first commits");
  return churn;
}

/**
 * The database first, then its WAL and -shm: the store looks at the three in that order, so what it names is the
 * database however the deletions and its looks interleave (deleted at once, it could find a -wal gone first).
 */
async function removeStoreFiles(db: string): Promise<void> {
  await rm(db);
  await Promise.all([`${db}-wal`, `${db}-shm`].map((path) => rm(path)));
}

/**
 * How a WAL or -shm deleted alone is said: gone, or, when a connection of the store made a new one at its path before
 * the store looked, another file (both stop the store).
 */
const GONE = "(was deleted|is another file now)";

/** kubemeta exits 1 within 10 s, having said why in one error line whose message matches `said`. */
async function expectStopped(kubemeta: Kubemeta, said: RegExp): Promise<void> {
  expect(await exitWithin(kubemeta.proc, 10_000)).toBe(1);
  await kubemeta.out.all();
  const errors = kubemeta.out.text.split("\n").filter((line) => line.includes('"level":"error"'));
  expect(errors.map((line) => JSON.parse(line).msg)).toEqual([STOPPING]);
  const [line] = kubemeta.out.lines(STOPPING);
  expect((line?.error as { message?: string } | undefined)?.message).toMatch(said);
}

/** kubemeta started on a new store (with `options`' sinks beside the test's) and ready; the store's file. */
async function started(options?: Parameters<typeof setup>[0]) {
  const env = await setup(options);
  const db = join(env.dir, "data", "kubemeta.db");
  const kubemeta = await env.start();
  await env.ready();
  return { env, db, kubemeta };
}

/** After a restart on what the path holds now: its epoch, and the old store's consumer told to start over. */
async function expectRestartServes(env: Awaited<ReturnType<typeof setup>>, oldId: string | undefined) {
  await env.start();
  await env.ready();
  const sse = await SseConnection.open(`${env.url}/v1/watch?stream=all`, { lastEventId: oldId });
  cleanups.push(() => sse.close());
  const reset = await sse.next(10_000);
  expect([reset.type, json(reset).code]).toEqual(["RESET", "other-epoch"]);
  return (await position(env.url)).epoch;
}

test("the store's file deleted under kubemeta during churn: exit 1, one line naming it; a new epoch", async () => {
  // A sink whose cursor is saved at its stop (once a minute before): that save is refused too, said by the one line.
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const { env, db, kubemeta } = await started({
    sinks: [`  - { type: nats, servers: ["${nats.url}"], cursorSaveInterval: 1m }`],
  });
  const before = await position(env.url);
  const consumer = await follow(env.url);
  await churning(env, before.version);

  await removeStoreFiles(db);
  await expectStopped(kubemeta, new RegExp(`${db} was deleted \\(the store opened inode \\d+ on device \\d+\\)`));
  const lastId = await consumer.lastId();
  expect(lastId).toStartWith(`${before.epoch}:`);

  expect(await expectRestartServes(env, lastId)).not.toBe(before.epoch);
}, 60_000);

test("the store's file replaced by another store's copy, kubemeta idle: exit 1; the restart serves it", async () => {
  const { env, db, kubemeta } = await started();
  const consumer = await follow(env.url);
  const other = join(await tempDir(), "other.db");
  const { epoch } = await clusterChecks(env.server, { url: `file:${other}` }).withStore((store) => store.position());

  // As a restore does it: the copy renamed into place, the running store's WAL and shared memory removed.
  await copyFile(other, `${db}.restoring`);
  await rename(`${db}.restoring`, db);
  await Promise.all([`${db}-wal`, `${db}-shm`].map((path) => rm(path)));
  await expectStopped(kubemeta, new RegExp(`${db} is another file now \\(inode \\d+ on device \\d+; the store opened`));

  expect(await expectRestartServes(env, await consumer.lastId())).toBe(epoch!);
}, 60_000);

/** `<db><suffix>` deleted alone during churn: kubemeta stops, naming it; restarted, it serves the same store whole. */
async function expectDeletedAloneKeepsAll(suffix: string) {
  const { env, db, kubemeta } = await started();
  const before = await position(env.url);
  const consumer = await follow(env.url);
  const churn = await churning(env, before.version);

  await rm(`${db}${suffix}`);
  await expectStopped(kubemeta, new RegExp(`${db}${suffix} ${GONE} \\(`));
  churn.stop();
  const lastId = await consumer.lastId();
  // The stop folded the log it had open into the file: the same store, every version the consumer was sent.
  await env.start();
  await env.ready();
  const after = await position(env.url);
  expect(after.epoch).toBe(before.epoch);
  expect(after.version).toBeGreaterThanOrEqual(Number(lastId.split(":")[1]));
  // Its position is the store's: it goes on from it (another epoch, or one ahead of the log, would be 410 Gone).
  expect((await fetch(`${env.url}/v1/updates?stream=all&since=${lastId}`)).status).toBe(200);
}

test("the store's WAL deleted alone during churn: exit 1 naming it; the restart has it all, no reset", async () => {
  await expectDeletedAloneKeepsAll("-wal");
}, 60_000);

// The WAL's index and the locks that keep writers apart: a process that opens the store without it builds another.
test("the store's -shm deleted alone during churn: exit 1 naming it; the restart has it all, no reset", async () => {
  await expectDeletedAloneKeepsAll("-shm");
}, 60_000);

test("reads while the file is replaced never answer from the other one: the state opened, or 503", async () => {
  const { env, db, kubemeta } = await started();
  const objects = async () => {
    const response = await fetch(`${env.url}/v1/objects`).catch(() => undefined);
    if (!response) return "no answer (stopped)";
    if (response.status !== 200) return String(response.status);
    return `200 with ${((await response.json()) as { items: unknown[] }).items.length} objects`;
  };
  const opened = await objects();
  const other = join(await tempDir(), "other.db");
  await clusterChecks(env.server, { url: `file:${other}` }).withStore((store) => store.position());

  await copyFile(other, `${db}.restoring`);
  await rename(`${db}.restoring`, db);
  await Promise.all([`${db}-wal`, `${db}-shm`].map((path) => rm(path)));
  // At once, before kubemeta looks at its file again: several at a time, so that the readers' pool opens connections.
  const answers = await Promise.all(Array.from({ length: 8 }, objects));
  expect(answers.filter((answer) => ![opened, "503", "no answer (stopped)"].includes(answer))).toEqual([]);
  await expectStopped(kubemeta, new RegExp(`${db} is another file now`));
}, 60_000);

/** A sink whose stop waits for POST /release-stop: the shutdown held before the store closes, as a slow drain is. */
const HELD_STOP_SINK = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "held-stop",
  description: "Holds its stop until POST /release-stop.",
  schema: v.strictObject({}),
  create: (_config, ctx) => {
    const released = Promise.withResolvers();
    return {
      async start() {
        ctx.http.post("/release-stop", (c) => {
          released.resolve();
          return c.text("released");
        });
      },
      async stop() {
        ctx.logger.info("the stop held");
        await released.promise;
      },
    };
  },
});
`;

test("the store's file deleted during a shutdown, before the store closes: exit 1 all the same", async () => {
  const env = await setup({ sinks: ["  - { type: ./held-stop.ts }"] });
  await Bun.write(join(env.dir, "held-stop.ts"), HELD_STOP_SINK);
  const db = join(env.dir, "data", "kubemeta.db");
  const kubemeta = await env.start();
  await env.ready();

  kubemeta.proc.kill("SIGTERM");
  await kubemeta.out.waitFor(/"msg":"the stop held"/, 10_000);
  await removeStoreFiles(db);
  expect((await fetch(`${env.url}/release-stop`, { method: "POST" })).status).toBe(200);
  await expectStopped(kubemeta, new RegExp(`${db} was deleted`));
}, 60_000);

test.skipIf(FILE_MODES_IGNORED)(
  "its data directory denied to kubemeta: a warning, it goes on; allowed again, its WAL gone stops it",
  async () => {
    const env = await setup();
    const data = join(env.dir, "data");
    const kubemeta = await env.start([...OBEYING_FILE_MODES]);
    await env.ready();

    await chmod(data, 0o000);
    cleanups.push(() => chmod(data, 0o755));
    const [line] = await kubemeta.out.waitFor(/\{[^\n]*"msg":"cannot tell whether the store's files are[^\n]*/, 10_000);
    expect(JSON.parse(line).error.message).toStartWith("EACCES: permission denied, stat");
    // It serves on; each read looks again (told once a minute, not once a look).
    expect((await fetch(`${env.url}/v1/objects?kind=Namespace`)).status).toBe(200);
    expect(kubemeta.out.text.match(/"msg":"cannot tell whether/g)).toHaveLength(1);
    await chmod(data, 0o755);
    await env.ready();
    await rm(join(data, "kubemeta.db-wal"));
    expect(await exitWithin(kubemeta.proc, 10_000)).toBe(1);
    const [stopped] = kubemeta.out.lines(STOPPING);
    expect((stopped?.error as { message?: string } | undefined)?.message).toMatch(
      new RegExp(`kubemeta.db-wal ${GONE}`),
    );
  },
  60_000,
);

/** The libsql store on `path`, stopped after the test; what it tells the host (StoreContext.replaced) in `told`. */
function fileStore(path: string, told: StoreReplacedError[] = []): Store {
  const store = libsqlOnFile(path, told);
  cleanups.push(() => store.stop());
  return store;
}

test("a commit once the file is deleted is refused, the same error each time, told once; none lands", async () => {
  const dir = await tempDir();
  const path = join(dir, "kubemeta.db");
  const told: StoreReplacedError[] = [];
  const store = fileStore(path, told);
  await store.start();
  await store.lead();
  await store.commit(batch(run(1, 3)));
  // The file it opened, and its WAL, kept under other names to be read once the store stopped.
  await link(path, join(dir, "opened.db"));
  await link(`${path}-wal`, join(dir, "opened.db-wal"));
  await Promise.all([path, `${path}-wal`, `${path}-shm`].map((file) => rm(file)));

  const refused = await store.commit(batch(run(4, 6))).catch((error: unknown) => error);
  expect(isStoreReplaced(refused)).toBe(true);
  expect(await store.commit(batch(run(4, 6))).catch((error: unknown) => error)).toBe(refused);
  expect(told).toEqual([refused as StoreReplacedError]);
  await store.stop();
  expect((await fileStore(join(dir, "opened.db")).start()).head).toBe(3);
});

test("a second writer on the store once its -shm is deleted: the store commits nothing more, unfenced", async () => {
  const dir = await tempDir();
  const path = join(dir, "kubemeta.db");
  const store = fileStore(path);
  await store.start();
  await store.lead();
  await store.commit(batch(run(1, 3)));
  await rm(`${path}-shm`);
  // Another process raises the term, as a second kubemeta's lead does: in the index it built anew, unseen here.
  const raise = `const db = new (require("libsql"))(${JSON.stringify(path)});
    db.exec("UPDATE meta SET term = term + 1 WHERE id = 1");`;
  expect(Bun.spawnSync([process.execPath, "-e", raise], { cwd: import.meta.dir }).exitCode).toBe(0);

  // Its fence would let this commit land over that one (it did): refused as the file replaced, whatever the term.
  expect(isStoreReplaced(await store.commit(batch(run(4, 6))).catch((error: unknown) => error))).toBe(true);
});
