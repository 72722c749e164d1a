/**
 * The libsql store on a real file in a temp dir, and through a libSQL server over such a file:
 * lifecycle, epoch, commit and the gap-free guard, per-stream reads, cursors.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createMetrics } from "../host/metrics.ts";
import { BACKENDS, batch, run, storeSandbox, update } from "./store-libsql-setup.ts";

describe.each(BACKENDS)("%s", (backend) => {
  const { newDir, makeStore, open, wipe } = storeSandbox(backend);

  describe("lifecycle and epoch", () => {
    test("start creates the directory, the file and an epoch; an empty store starts at 0", async () => {
      const dir = newDir();
      const state = await makeStore(dir).start();
      expect(existsSync(join(dir, "nested", "kubemeta.db"))).toBe(true);
      expect(state.epoch).toMatch(/^[0-9a-f]{16}$/);
      expect(state).toMatchObject({ head: 0, oldest: 1 });
      expect(state.streamHeads.size).toBe(0);
      expect(state.resumePoints.size).toBe(0);
    });

    test("a reopened store keeps epoch, head, stream heads, resume points and cursors", async () => {
      const dir = newDir();
      const first = makeStore(dir);
      const { epoch } = await first.start();
      await first.commit(batch(run(1, 5), { pods: "77", nodes: "12" }));
      await first.saveCursor("sink/webhook", 4);
      await first.stop();

      const state = await makeStore(dir).start();
      expect(state.epoch).toBe(epoch);
      expect(state.head).toBe(5);
      expect(state.oldest).toBe(1);
      expect(Object.fromEntries(state.streamHeads)).toEqual({ shared: 3, "node/a": 4, "node/b": 5 });
      expect(Object.fromEntries(state.resumePoints)).toEqual({ pods: "77", nodes: "12" });
      expect(await open[1]!.cursor("sink/webhook")).toBe(4);
    });

    test("a wiped store gets a new epoch and starts over", async () => {
      const dir = newDir();
      const first = makeStore(dir);
      const { epoch } = await first.start();
      await first.commit(batch(run(1, 3)));
      await first.stop();
      await wipe(dir);

      const state = await makeStore(dir).start();
      expect(state.epoch).not.toBe(epoch);
      expect(state.head).toBe(0);
    });

    test("stop without start, start twice, stop twice, start again after stop", async () => {
      const store = makeStore(newDir());
      await store.stop();
      const a = await store.start();
      const b = await store.start();
      expect(b.epoch).toBe(a.epoch);
      await store.commit(batch(run(1, 2)));
      await store.stop();
      await store.stop();
      await expect(store.readUpdates({ stream: "all", after: 0, limit: 10 })).rejects.toThrow(/not started/);
      const again = await store.start();
      expect(again).toMatchObject({ epoch: a.epoch, head: 2 });
    });
  });

  describe("commit and the log", () => {
    test("updates round-trip exactly and read per stream with after, to and limit", async () => {
      const store = makeStore(newDir());
      await store.start();
      const updates = run(1, 9);
      updates[3] = update(4, { stream: null, namespace: null, node: null });
      await store.commit(batch(updates));

      expect(await store.readUpdates({ stream: "all", after: 0, limit: 100 })).toEqual(updates);
      const versions = async (stream: string, after: number, limit: number, to?: number) =>
        (await store.readUpdates({ stream, after, to, limit })).map((u) => u.version);
      expect(await versions("all", 2, 3)).toEqual([3, 4, 5]);
      expect(await versions("all", 2, 100, 6)).toEqual([3, 4, 5, 6]);
      expect(await versions("shared", 0, 100)).toEqual([3, 6, 9]);
      expect(await versions("node/a", 1, 100)).toEqual([7]);
      expect(await versions("node/b", 0, 1)).toEqual([2]);
      expect(await versions("node/b", 0, 100, 5)).toEqual([2, 5]);
      expect(await versions("node/unknown", 0, 100)).toEqual([]);
      expect(await versions("all", 9, 100)).toEqual([]);
      expect(await versions("all", 0, 0)).toEqual([]);
    });

    test("a batch that does not continue the log is refused and nothing of it is written", async () => {
      const store = makeStore(newDir());
      await store.start();
      await store.commit(batch(run(1, 3)));
      await expect(store.commit(batch(run(5, 6)))).rejects.toThrow(/gap-free/);
      await expect(store.commit(batch(run(3, 4)))).rejects.toThrow(/gap-free/);
      await expect(store.commit(batch([update(4), update(6)]))).rejects.toThrow(/gap-free/);
      expect((await store.readUpdates({ stream: "all", after: 0, limit: 100 })).map((u) => u.version)).toEqual([
        1, 2, 3,
      ]);
      await store.commit(batch(run(4, 4)));
      expect((await store.readUpdates({ stream: "all", after: 3, limit: 100 })).map((u) => u.version)).toEqual([4]);
    });

    /** Two started stores on one file: two writers, or both sides of one commit. */
    async function twoStoresOnOneFile() {
      const dir = newDir();
      const stores = [makeStore(dir), makeStore(dir)] as const;
      for (const store of stores) await store.start();
      return stores;
    }

    test("a second writer on the same file makes the first one's next commit fail, never fork the log", async () => {
      const [first, second] = await twoStoresOnOneFile();
      await second.commit(batch(run(1, 2)));
      // Awaited, then checked: expect(…).rejects would block the writer thread's reply (tests/bun-worker.test.ts).
      const refused = await first.commit(batch(run(1, 1))).catch((error: Error) => error);
      // Neither raised the term (lead()), as every writer does first: the head moved in the first one's own term.
      expect(refused?.message).toMatch(/the store's head is 2, not 0 as this process left it, in its own term 0/);
      expect((await first.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.uid)).toEqual([
        "uid-1",
        "uid-2",
      ]);
    });

    test("a retried commit that had landed (a cut after COMMIT) is recognised as done, not refused", async () => {
      const [writer, landed] = await twoStoresOnOneFile();
      const updates = batch(run(1, 2));
      // `landed` stands for the server side of a commit whose answer never reached `writer`.
      await landed.commit(updates);
      await writer.commit(updates);
      await writer.commit(batch(run(3, 3)));
      expect((await writer.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.uid)).toEqual([
        "uid-1",
        "uid-2",
        "uid-3",
      ]);
    });

    test("a batch of only resume points (bookmarks) commits", async () => {
      const dir = newDir();
      const store = makeStore(dir);
      await store.start();
      await store.commit({ updates: [], digests: [], resumePoints: new Map([["pods", "900"]]) });
      await store.stop();
      const state = await makeStore(dir).start();
      expect(state.resumePoints.get("pods")).toBe("900");
      expect(state.head).toBe(0);
    });

    // File only: its statements run on the writer's thread, posted to it in slices; remote ones wait on I/O.
    test.if(backend === "file")(
      "a large commit leaves the event loop running and is timed in kubemeta_store_commit_seconds",
      async () => {
        const metrics = createMetrics();
        const store = makeStore(newDir(), metrics);
        await store.start();
        let ticks = 0;
        const timer = setInterval(() => ticks++, 1);
        await store.commit(batch(run(1, 6000)));
        clearInterval(timer);
        expect(ticks).toBeGreaterThan(0);
        expect(metrics.render()).toContain("kubemeta_store_commit_seconds_count 1");
      },
    );
  });

  describe("cursors", () => {
    test("cursors are undefined until saved, then overwritten", async () => {
      const store = makeStore(newDir());
      await store.start();
      expect(await store.cursor("sink/nats")).toBeUndefined();
      await store.saveCursor("sink/nats", 10);
      await store.saveCursor("sink/nats", 12);
      await store.saveCursor("sink/webhook", 3);
      expect(await store.cursor("sink/nats")).toBe(12);
      expect(await store.cursor("sink/webhook")).toBe(3);
    });
  });
});
