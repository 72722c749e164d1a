/**
 * `main.ts new-epoch`, the restore procedure's last step. A `file:` store restored from an older copy of itself keeps
 * its epoch: the versions after the copy's head are issued again for other updates, and a consumer past that head that
 * resumes once the head passed its position goes on from versions that are not the ones it held, unsaid. With a new
 * epoch every consumer resets on its next resume. Refused while a kubemeta serves the file; on a remote store, the
 * raised term fences a writer still running.
 */
import { afterEach, expect, test } from "bun:test";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import libsql from "../plugins/stores/libsql.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { isWriterFenced } from "../sdk/contract.ts";
import { startChurn } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { clusterChecks } from "./cluster-checks.ts";
import { cleanups, runCleanups, setup, type Kubemeta } from "./faults-cluster.ts";
import { startHranaServer } from "./hrana-server.ts";
import { exitWithin, runMain } from "./reliability-process.ts";
import { batch, run } from "./store-libsql-setup.ts";
import { json, SseConnection } from "./sse-client.ts";

afterEach(runCleanups);

const REFUSED = "is open in another process (a kubemeta serving it, or a tool reading it): stop it, then run new-epoch";

/** kubemeta's epoch and version, as /v1/objects answers them. */
async function position(url: string): Promise<{ epoch: string; version: number }> {
  return (await (await fetch(`${url}/v1/objects?kind=Namespace`)).json()) as { epoch: string; version: number };
}

/** Pod churn on the test API server until kubemeta's version passes `version`. */
async function churnPast(env: Awaited<ReturnType<typeof setup>>, version: number): Promise<void> {
  const churn = startChurn(env.server, { perSecond: 40 });
  cleanups.push(() => churn.stop());
  await waitFor(async () => (await position(env.url)).version > version, 20_000, `kubemeta's version past ${version}`);
  churn.stop();
}

async function stop(kubemeta: Kubemeta): Promise<void> {
  kubemeta.proc.kill("SIGTERM");
  expect(await exitWithin(kubemeta.proc, 20_000)).toBe(0);
}

const newEpoch = (config: string) => runMain(["new-epoch", "--config", config]);

test("an older copy restored, new-epoch run: a consumer past the copy's head resets, the head past it", async () => {
  const env = await setup();
  const db = join(env.dir, "data", "kubemeta.db");
  const config = join(env.dir, "kubemeta.yaml");
  let kubemeta = await env.start();
  await env.ready();
  await stop(kubemeta);
  const backup = join(env.dir, "backup.db");
  await copyFile(db, backup);
  const copy = await clusterChecks(env.server, { url: `file:${backup}` }).withStore((store) => store.position());

  // The store goes on past the copy's head, a consumer with it.
  kubemeta = await env.start();
  await env.ready();
  const sse = await SseConnection.open(`${env.url}/v1/watch?stream=all`);
  cleanups.push(() => sse.close());
  await sse.takeUntil("SYNCED", 20_000);
  await churnPast(env, copy.head + 50);
  await stop(kubemeta);
  await sse.ended;
  const [heldEpoch, held] = sse.lastEventId.split(":");
  expect([heldEpoch, Number(held) > copy.head]).toEqual([copy.epoch, true]);

  // The restore: kubemeta stopped, the copy in place, the WAL and shared memory of the store it replaces removed.
  await copyFile(backup, db);
  await Promise.all([`${db}-wal`, `${db}-shm`].map((path) => rm(path, { force: true })));
  const { code, stdout } = await newEpoch(config);
  expect(code).toBe(0);
  const said = new RegExp(`^epoch ${copy.epoch} replaced by ([0-9a-f]{16}); head ${copy.head} kept \\(the next `);
  const epoch = said.exec(stdout)?.[1];
  expect(epoch).toBeDefined();

  await env.start();
  await env.ready();
  await churnPast(env, Number(held));
  const resumed = await SseConnection.open(`${env.url}/v1/watch?stream=all`, { lastEventId: sse.lastEventId });
  cleanups.push(() => resumed.close());
  const [reset, ...state] = await resumed.takeUntil("SYNCED", 20_000);
  expect([reset?.type, json(reset!).code]).toEqual(["RESET", "other-epoch"]);
  expect(state.filter((event) => event.type === "ADDED").length).toBeGreaterThan(0);
  expect(json(state.at(-1)!).epoch).toBe(epoch!);
}, 120_000);

test("new-epoch while kubemeta serves the file: exit 1 naming it, the store and kubemeta unchanged", async () => {
  const env = await setup();
  const db = join(env.dir, "data", "kubemeta.db");
  await env.start();
  await env.ready();
  const before = await position(env.url);

  const { code, stdout, stderr } = await newEpoch(join(env.dir, "kubemeta.yaml"));
  expect([code, stdout, stderr]).toEqual([1, "", `kubemeta: new-epoch: ${db} ${REFUSED} again\n`]);
  expect((await position(env.url)).epoch).toBe(before.epoch);
  expect((await fetch(`${env.url}/readyz`)).status).toBe(200);
  await churnPast(env, before.version);
}, 60_000);

test("new-epoch on a remote store: a new epoch, the head kept; a writer still running is fenced", async () => {
  const dir = await tempDir();
  const server = startHranaServer({ path: join(dir, "remote.db") });
  cleanups.push(() => server.stop());
  const remote = () => {
    const store = libsql.create(v.parse(libsql.schema, { url: server.url }), {
      name: "libsql",
      cluster: "test",
      logger: silentLogger,
      metrics: createMetrics(),
    });
    cleanups.push(() => store.stop());
    return store;
  };
  const writer = remote();
  const { epoch: before } = await writer.start();
  await writer.lead();
  await writer.commit(batch(run(1, 3)));
  const config = join(dir, "kubemeta.yaml");
  await writeFile(config, `store: { type: libsql, url: "${server.url}" }\n`);

  const { code, stdout } = await newEpoch(config);
  expect(code).toBe(0);
  const epoch = new RegExp(`^epoch ${before} replaced by ([0-9a-f]{16}); head 3 kept`).exec(stdout)?.[1];
  expect(epoch).toBeDefined();
  const refused = await writer.commit(batch(run(4, 4))).catch((error: unknown) => error);
  expect(isWriterFenced(refused)).toBe(true);
  const state = await remote().start();
  expect([state.epoch, state.head]).toEqual([epoch!, 3]);
});

test("new-epoch: --help names it; no other option; no store, or none of kubemeta's (or no file), at the path: exit 1", async () => {
  expect((await runMain(["--help"])).stdout).toContain("bun run main.ts new-epoch [--config <file>]");
  const dir = await tempDir();
  const config = join(dir, "kubemeta.yaml");
  const path = join(dir, "kubemeta.db");
  await writeFile(config, `store: { type: libsql, url: "file:${path}" }\n`);
  const misused = await runMain(["new-epoch", "--config", config, "--port", "8080"]);
  expect([misused.code, misused.stderr]).toEqual([
    2,
    "kubemeta: new-epoch gives the config's store a new epoch: it takes --config alone (see --help)\n",
  ]);

  const none = await newEpoch(config);
  expect([none.code, none.stderr]).toEqual([
    1,
    `kubemeta: new-epoch: no store at ${path}: new-epoch gives an existing store a new epoch\n`,
  ]);
  expect(existsSync(path)).toBe(false);
  // The store's folder given, or a FIFO: said as what it is, as --check and a start say it, not as no store.
  const notAFile: [string, () => unknown][] = [
    ["a directory", () => mkdir(path)],
    ["a FIFO", () => rm(path, { recursive: true }).then(() => Bun.spawnSync(["mkfifo", path]))],
  ];
  for (const [kind, make] of notAFile) {
    await make();
    const refused = await newEpoch(config);
    expect([refused.code, refused.stderr]).toEqual([
      1,
      `kubemeta: new-epoch: cannot open ${path}: it is ${kind}, not a regular file: give store.url the path of the ` +
        "database's file\n",
    ]);
  }
  await rm(path);
  await writeFile(path, "");
  const empty = await newEpoch(config);
  expect([empty.code, empty.stderr]).toEqual([
    1,
    `kubemeta: new-epoch: ${path} holds no kubemeta store: a new one gets its epoch when created\n`,
  ]);
  // A backup copied wrong (an archive, not the database): the line names the file, as --check and a start do.
  await writeFile(path, "not a database, a text file long enough for SQLite to read its header\n");
  const garbage = await newEpoch(config);
  expect([garbage.code, garbage.stderr]).toEqual([
    1,
    `kubemeta: new-epoch: cannot open ${path}: file is not a database\n`,
  ]);
});

test("new-epoch under a kubemeta serving a remote store: it stops as for a store replaced, no other writer said", async () => {
  const env = await setup({ store: "ws" });
  const kubemeta = await env.start();
  await env.ready();
  const { code } = await newEpoch(join(env.dir, "kubemeta.yaml"));
  expect(code).toBe(0);
  const churn = startChurn(env.server, { perSecond: 40 });
  cleanups.push(() => churn.stop());
  expect(await exitWithin(kubemeta.proc, 20_000)).toBe(1);
  const said = kubemeta.out.text
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line).msg as string);
  expect(said).toContain("stopping: the store was replaced under this process");
  // No other kubemeta writes this store: new-epoch raised its term, once.
  expect(said.filter((msg) => msg.startsWith("another kubemeta"))).toEqual([]);
}, 40_000);
