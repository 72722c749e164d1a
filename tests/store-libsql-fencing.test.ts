/**
 * Fencing: each writer's `lead()` raises the store's term, and a commit of an earlier term is refused in its own
 * transaction. A deposed leader (paused past its Lease, cut off, or simply still running) writes nothing: no
 * update, no resume point, no version twice.
 */
import { describe, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { isStoreReplaced, WriterFencedError } from "../sdk/contract.ts";
import { BACKENDS, batch, run, storeSandbox } from "./store-libsql-setup.ts";

/**
 * What a call throws. Not `expect(call).rejects`: that blocks Bun's event loop without delivering
 * the writer thread's replies, so a commit on `file:` never settles there (tests/bun-worker.test.ts).
 */
const failure = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (error: unknown) => error,
  );

describe.each(BACKENDS)("libsql store (%s): fencing by term", (backend) => {
  const { newDir, makeStore, urlOf } = storeSandbox(backend);

  async function twoWriters() {
    const dir = newDir();
    const [old, next] = [makeStore(dir), makeStore(dir)];
    const { epoch } = await old.start();
    await next.start();
    await old.lead();
    await old.commit(batch(run(1, 2), { pods: "100" }));
    return { old, next, epoch, dir };
  }

  test("a writer deposed by a later lead() commits nothing, and says why", async () => {
    const { old, next } = await twoWriters();
    const state = await next.lead();
    expect(state.head).toBe(2);
    expect(state.resumePoints.get("pods")).toBe("100");

    const refused = await failure(old.commit(batch(run(3, 4), { pods: "200" })));
    expect(refused).toBeInstanceOf(WriterFencedError);
    expect((refused as Error).message).toMatch(/term 1 is no longer the store's \(term 2\)/);
    // A bookmark alone (resume points, no update) is fenced as well.
    expect(await failure(old.commit(batch([], { pods: "300" })))).toBeInstanceOf(WriterFencedError);

    await next.commit(batch(run(3, 3), { pods: "150" }));
    expect((await next.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.version)).toEqual([1, 2, 3]);
    expect((await next.lead()).resumePoints.get("pods")).toBe("150");
  });

  test("an empty batch (a quiet leader's check) writes no row, and a deposed writer's is refused", async () => {
    const { old, next, dir } = await twoWriters();
    // Every row an UPDATE of meta writes, counted (SQLite skips writing a row set to what it holds; a remote store
    // bills it all the same): the count is what the store wrote.
    const watcher = createClient({ url: urlOf(dir) });
    try {
      await watcher.batch(
        [
          "CREATE TABLE meta_writes (n INTEGER NOT NULL)",
          "INSERT INTO meta_writes VALUES (0)",
          "CREATE TRIGGER count_meta_writes AFTER UPDATE ON meta BEGIN UPDATE meta_writes SET n = n + 1; END",
        ],
        "write",
      );
      for (let check = 0; check < 3; check++) await old.commit(batch([]));
      // Was: the guard's UPDATE of meta at each check.
      expect((await watcher.execute("SELECT n FROM meta_writes")).rows[0]?.n).toBe(0);
      await next.lead();
      const refused = await failure(old.commit(batch([])));
      expect(refused).toBeInstanceOf(WriterFencedError);
      expect((refused as Error).message).toMatch(/term 1 is no longer the store's \(term 2\)/);
    } finally {
      watcher.close();
    }
  });

  test("a lead() whose check another writer's lead() follows (a pause after it) raises no term: refused", async () => {
    const { old: late, next } = await twoWriters();
    // The late one read the store's term (1) and its Lease was still held; a next leader took the store meanwhile.
    const refused = await failure(late.lead(() => next.lead().then(() => {})));
    expect(refused).toBeInstanceOf(WriterFencedError);
    expect((refused as Error).message).toBe("the store's term went from 1 to 2 as this writer took it; another leads");
    // Was: the late lead() raised the term past the next leader's, whose commit was refused.
    await next.commit(batch(run(3, 3), { pods: "150" }));
    // A check that throws (the Lease not surely held) raises nothing either; one that passes raises as before.
    const notHeld = await failure(late.lead(() => Promise.reject(new Error("not held"))));
    expect(notHeld).toMatchObject({ message: "not held" });
    await next.commit(batch(run(4, 4), { pods: "160" }));
    expect((await late.lead(() => {})).head).toBe(4);
    expect(await failure(next.commit(batch(run(5, 5), { pods: "170" })))).toBeInstanceOf(WriterFencedError);
  });

  test("the first sync's end (a commit with `whole`) is recorded for all; a deposed writer's is refused", async () => {
    const { old, next } = await twoWriters();
    await next.lead();
    // A deposed leader whose sources synced after it lost the store: what it would mark whole is not the new one's.
    expect(await failure(old.commit({ ...batch([]), whole: true }))).toBeInstanceOf(WriterFencedError);
    expect(await next.position()).toMatchObject({ head: 2, whole: false });
    await next.commit({ ...batch(run(3, 3)), whole: true });
    expect(await old.position()).toMatchObject({ head: 3, whole: true });
    // Alone, with nothing else to commit, as well; and it stays set.
    await next.commit({ ...batch([]), whole: true });
    await next.commit(batch(run(4, 4)));
    expect((await next.lead()).whole).toBe(true);
  });

  test("a deposed writer's retention is refused like its commits: the new writer's log stays whole", async () => {
    const { old, next } = await twoWriters();
    await next.lead();
    await next.commit(batch(run(3, 10)));
    const refused = await failure(old.prune({ maxAgeMs: 0, maxUpdates: 1 }));
    expect(refused).toBeInstanceOf(WriterFencedError);
    expect(await next.position()).toMatchObject({ head: 10, oldest: 1 });
    // The writer of the store's term prunes as it always did.
    await next.prune({ maxAgeMs: 0, maxUpdates: 1 });
    expect((await next.position()).oldest).toBe(10);
  });

  test("position() follows what another writer commits; lead() returns the state after the last commit", async () => {
    const { old, next, epoch } = await twoWriters();
    expect(await next.position()).toEqual({ head: 2, oldest: 1, epoch, whole: false });
    await old.commit(batch(run(3, 5)));
    expect(await next.position()).toEqual({ head: 5, oldest: 1, epoch, whole: false });
    await old.prune({ maxAgeMs: 0, maxUpdates: 2 });
    expect(await next.position()).toEqual({ head: 5, oldest: 4, epoch, whole: false });
    const state = await next.lead();
    expect([state.head, state.oldest]).toEqual([5, 4]);
    await next.commit(batch(run(6, 6)));
    expect(await old.position()).toEqual({ head: 6, oldest: 4, epoch, whole: false });
  });

  test("position() of a store emptied under it (wiped while open) has no epoch: a replica starts over", async () => {
    const { next, dir } = await twoWriters();
    const client = createClient({ url: urlOf(dir) });
    await client.execute("DROP TABLE meta");
    client.close();
    expect(await next.position()).toEqual({ head: 0, oldest: 1, epoch: "", whole: false });
  });

  test("a commit to a store emptied under its writer is fenced: the store is no longer its", async () => {
    const { old, dir } = await twoWriters();
    const client = createClient({ url: urlOf(dir) });
    await client.execute("DROP TABLE meta");
    client.close();
    const refused = await failure(old.commit(batch(run(3, 3))));
    expect(refused).toBeInstanceOf(WriterFencedError);
    expect((refused as Error).message).toBe(
      "commit refused: the store was emptied under this writer (its tables are gone)",
    );
  });

  test("a commit to a store whose head moved back under its writer, in its term (a copy restored)", async () => {
    const dir = newDir();
    const told: Error[] = [];
    const store = makeStore(dir, undefined, (error) => told.push(error));
    await store.start();
    await store.lead();
    await store.commit(batch(run(1, 3)));
    // What a copy of the store taken at version 1 put back in place holds: the same epoch and term, an older head.
    const client = createClient({ url: urlOf(dir) });
    await client.batch(["DELETE FROM updates WHERE version > 1", "UPDATE meta SET head = 1"], "write");
    client.close();

    const refused = await failure(store.commit(batch(run(4, 4))));
    expect(isStoreReplaced(refused)).toBe(true);
    expect((refused as Error).message).toContain("the store's head is 1, not 3 as this process left it");
    expect(told).toEqual([refused as Error]);
    // Nothing more is written, the copy's versions after its head not numbered again by this process.
    expect(await failure(store.commit(batch(run(4, 4))))).toBe(refused);
    expect((await store.position()).head).toBe(1);
  });

  test("the term is stored: a deposed writer that reopens the store is fenced again by the next lead()", async () => {
    const { old, next } = await twoWriters();
    await next.lead();
    await old.stop();
    await old.start();
    await next.lead();
    expect(await failure(old.commit(batch(run(3, 3))))).toBeInstanceOf(WriterFencedError);
    await next.commit(batch(run(3, 3)));
    expect((await old.position()).head).toBe(3);
  });
});
