/**
 * The libsql store against a libSQL server (./hrana-server.ts) in what only a remote store
 * meets: a bearer token, a server restarted under it, a restart in the middle of a commit
 * (landed or not; over HTTP and over WebSocket), a read transaction outliving the server's
 * idle limit for streams, and the server's limit on the size of a statement's result; over WebSocket, how many
 * connections its requests open.
 */
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { createClient } from "@libsql/client";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { snapshotPages } from "../plugins/stores/libsql/read.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import type { Store } from "../sdk/contract.ts";
import { startHranaServer } from "./hrana-server.ts";
import { exitWithin, spawnHranaServer } from "./reliability-process.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { waitFor } from "../testing/index.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";

const { newDir, open } = storeSandbox("remote");
const TOKEN = "test-token-5f1e";

function remoteStore(url: string, authToken?: string, timeout?: string): Store {
  const config = v.parse(libsql.schema, { url, authToken, timeout });
  const store = libsql.create(config, {
    name: "libsql",
    cluster: "test",
    logger: silentLogger,
    metrics: createMetrics(),
  });
  open.push(store);
  return store;
}

/** The server as its own process (spawnHranaServer), with the token. */
const spawnServer = (db: string, port = 0, crashOnCommit?: "before" | "after") =>
  spawnHranaServer(db, { port, token: TOKEN, crashOnCommit });

/** The test server's URL as spoken over `scheme`: Hrana over HTTP, or over WebSocket on the same port. */
const over = (scheme: "http" | "ws", url: string) => url.replace(/^http/, scheme);

describe("bearer token", () => {
  // Over HTTP the status says it, over WebSocket the code of the hello_error.
  test.each([
    ["http", "HTTP 401", "HTTP 401"],
    ["ws", "AUTH_JWT_INVALID", "AUTH_JWT_MISSING"],
  ] as const)(
    "a wrong or missing token fails start with a clear error; the right one opens the store (%s)",
    async (scheme, ...said) => {
      const server = startHranaServer({ path: join(newDir(), "k.db"), token: TOKEN });
      const url = over(scheme, server.url);
      try {
        for (const [i, token] of ["wrong", undefined].entries()) {
          const error = await remoteStore(url, token)
            .start()
            .then(
              () => undefined,
              (e: Error) => e,
            );
          expect(error?.message).toBe(
            `the libSQL server at 127.0.0.1:${server.port} refused the auth token (${said[i]}): check store.authToken`,
          );
        }
        const store = remoteStore(url, TOKEN);
        expect(await store.start()).toMatchObject({ head: 0 });
        await store.commit(batch(run(1, 2)));
        expect((await store.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.version)).toEqual([1, 2]);
      } finally {
        await server.stop();
      }
    },
  );

  test("a server that is not there: start names it and fails", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    await server.stop();
    await expect(remoteStore(server.url).start()).rejects.toThrow(
      `cannot reach the libSQL server at 127.0.0.1:${server.port}`,
    );
  });
});

describe("a server that accepts connections and never answers", () => {
  test("start fails after store.timeout, naming the server, instead of waiting for fetch's five minutes", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      // Over WebSocket too, where no fetch carries the bound: its handshake never answered, it waited for good.
      for (const scheme of ["http", "ws"]) {
        const began = performance.now();
        const error = await remoteStore(`${scheme}://127.0.0.1:${silent.port}`, TOKEN, "300ms")
          .start()
          .then(
            () => undefined,
            (e: Error) => e,
          );
        expect([scheme, error?.message]).toEqual([
          scheme,
          `cannot reach the libSQL server at 127.0.0.1:${silent.port}: no answer within 300 ms (store.timeout)`,
        ]);
        expect(performance.now() - began).toBeLessThan(5_000);
      }
    } finally {
      silent.stop(true);
    }
  });

  test.each(["http", "ws"] as const)(
    "a commit to a server that stops answering fails after store.timeout; then its retry lands (%s)",
    async (scheme) => {
      const db = join(newDir(), "k.db");
      const server = await spawnServer(db);
      try {
        const store = remoteStore(over(scheme, server.url), TOKEN, "500ms");
        await store.start();
        await store.commit(batch(run(1, 2)));
        server.child.kill("SIGSTOP");
        const interrupted = batch(run(3, 4));
        const refused = await store.commit(interrupted).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(refused?.message).toMatch(/no answer within 500 ms/);
        server.child.kill("SIGCONT");
        await store.commit(interrupted);
        expect((await store.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.version)).toEqual([
          1, 2, 3, 4,
        ]);
      } finally {
        server.child.kill("SIGKILL");
      }
    },
  );

  test("over ws://, a commit on a connection left hanging fails after store.timeout; its retry lands", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db"), token: TOKEN });
    try {
      const store = remoteStore(server.wsUrl, TOKEN, "500ms");
      await store.start();
      await store.commit(batch(run(1, 2)));
      // As a failover leaves it: the connection open hangs for good, a new one is answered.
      expect(server.silenceWebSockets()).toBe(1);
      const interrupted = batch(run(3, 4));
      const refused = await until(
        store.commit(interrupted).then(
          () => undefined,
          (e: Error) => e,
        ),
        Date.now() + 5_000,
      );
      expect(refused === TIMED_OUT ? "no answer in 5 s" : refused?.message).toBe(
        "no answer within 500 ms (store.timeout)",
      );
      await store.commit(interrupted);
      const log = async () => (await store.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.version);
      expect(await log()).toEqual([1, 2, 3, 4]);
      // A read likewise: given up after store.timeout, the next one goes over a new connection.
      expect(server.silenceWebSockets()).toBe(1);
      await expect(log()).rejects.toThrow("no answer within 500 ms (store.timeout)");
      expect(await log()).toEqual([1, 2, 3, 4]);
    } finally {
      // Closes the hung connection too: a commit still waiting on it fails, so the store can stop.
      await server.stop();
    }
  }, 15_000);
  test("over ws://, while a commit waits on a connection left hanging, reads go over another at once", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db"), token: TOKEN });
    try {
      const store = remoteStore(server.wsUrl, TOKEN, "5s");
      await store.start();
      await store.commit(batch(run(1, 2)));
      expect(server.silenceWebSockets()).toBe(1);
      const interrupted = batch(run(3, 4));
      const refused = store.commit(interrupted).then(
        () => undefined,
        (e: Error) => e,
      );
      await waitFor(() => server.droppedWebSocketMessages() > 0, 5_000, "the commit sent over the silenced connection");
      const log = async () => (await store.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.version);
      // Not behind the commit: over a connection nothing waits on (a new one), as over HTTP.
      expect(await until(log(), Date.now() + 1_000)).toEqual([1, 2]);
      expect((await refused)?.message).toBe("no answer within 5000 ms (store.timeout)");
      await store.commit(interrupted);
      expect(await log()).toEqual([1, 2, 3, 4]);
    } finally {
      await server.stop();
    }
  }, 15_000);
});

describe("the ws:// connections", () => {
  test("over ws://, requests made together again and again share connections: no new one for each", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    try {
      const store = remoteStore(server.wsUrl, undefined, "5s");
      await store.start();
      const before = server.webSocketsOpened();
      for (let version = 1; version <= 30; version++) {
        // A commit with the sinks' read and a readiness check beside it, as under churn.
        const read = store.readUpdates({ stream: "all", after: 0, limit: 10 });
        await Promise.all([store.commit(batch(run(version, version))), read, store.position()]);
      }
      expect(server.webSocketsOpened() - before).toBeLessThanOrEqual(3);
    } finally {
      await server.stop();
    }
  });
  test("over ws://, a burst of reads opens a few connections, not one each: every read answered", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    try {
      const store = remoteStore(server.wsUrl, undefined, "5s");
      await store.start();
      await store.commit(batch(run(1, 2)));
      const before = server.webSocketsOpened();
      // Readers resuming behind the log's tail at once (SSE clients back after a restart): a store read each.
      const reads = Array.from({ length: 100 }, () => store.readUpdates({ stream: "all", after: 0, limit: 10 }));
      for (const read of await Promise.all(reads)) expect(read.map((u) => u.version)).toEqual([1, 2]);
      expect(server.webSocketsOpened() - before).toBeLessThanOrEqual(8);
    } finally {
      await server.stop();
    }
  });
  test("over ws://, every connection left hanging with a read on it: the next read goes over a new one", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    try {
      const store = remoteStore(server.wsUrl, undefined, "5s");
      await store.start();
      await store.commit(batch(run(1, 2)));
      const read = () => store.readUpdates({ stream: "all", after: 0, limit: 10 }).then((u) => u.map((x) => x.version));
      // A burst leaves the most connections open (kept for the next requests); then a failover hangs them all.
      await Promise.all(Array.from({ length: 100 }, read));
      const hung = server.silenceWebSockets();
      expect(hung).toBe(8);
      const waiting = Array.from({ length: hung }, () => read().catch((e: Error) => e.message));
      await waitFor(() => server.droppedWebSocketMessages() >= hung, 5_000, "a read sent over each hung connection");
      // Not over a hung one, whatever the bound: once they have answered nothing for a while, past it.
      await Bun.sleep(2_100);
      expect(await until(read(), Date.now() + 1_500)).toEqual([1, 2]);
      expect(await Promise.all(waiting)).toEqual(Array(hung).fill("no answer within 5000 ms (store.timeout)"));
    } finally {
      await server.stop();
    }
  }, 15_000);
  test("over ws://, a server answering no connection, new ones neither: 16 open at most; then answered", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    let reading: Timer | undefined;
    try {
      // Longer than the test: no hung connection is given up, and closed, meanwhile.
      const store = remoteStore(server.wsUrl, undefined, "20s");
      await store.start();
      await store.commit(batch(run(1, 2)));
      const read = () => store.readUpdates({ stream: "all", after: 0, limit: 10 });
      // A burst leaves the most connections open (kept for the next requests); then nothing answers, new ones neither.
      await Promise.all(Array.from({ length: 100 }, read));
      server.silenceWebSockets(true);
      store.commit(batch(run(3, 4))).catch(() => {});
      // Reads beside the commit (the sinks', SSE clients', readiness checks'), past a connection's silence (2 s) twice:
      // connections that answered nothing for that long made room for new ones, which hung too.
      let answeredAt: number | undefined;
      const answered = () => {
        answeredAt ??= Date.now();
      };
      reading = setInterval(() => {
        for (let i = 0; i < 4; i++) read().then(answered, () => {});
      }, 200);
      await Bun.sleep(4_300);
      expect(answeredAt).toBeUndefined();
      expect(server.mostWebSocketsOpen()).toBeLessThanOrEqual(16);
      // The server answers new connections again: reads are, not only once a hung connection is given up.
      server.silenceWebSockets();
      const healed = Date.now();
      await waitFor(() => answeredAt, 10_000, "a read answered");
      expect(answeredAt! - healed).toBeLessThan(4_000);
      expect(server.mostWebSocketsOpen()).toBeLessThanOrEqual(16);
    } finally {
      clearInterval(reading);
      // Closes the hung connections too: what waits on them fails, so the store can stop.
      await server.stop();
    }
  }, 20_000);
});

describe.each(["http", "ws"] as const)("a server restarted in the middle of a commit (%s)", (scheme) => {
  test.each([
    ["after", "landed, its answer lost", 6],
    ["before", "not landed", 3],
  ] as const)(
    "crash %s COMMIT (%s): the commit fails, its retry succeeds exactly once",
    async (when, _, headAfterCrash) => {
      const db = join(newDir(), "k.db");
      let server = await spawnServer(db);
      const { port } = server;
      try {
        const store = remoteStore(over(scheme, server.url), TOKEN);
        await store.start();
        await store.commit(batch(run(1, 3), { pods: "103" }));

        // Restarted between commits, the store goes on; then the server dies at the next COMMIT.
        await server.stop();
        server = await spawnServer(db, port, when);
        const interrupted = batch(run(4, 6), { pods: "106" });
        await expect(store.commit(interrupted)).rejects.toThrow();
        await exitWithin(server.child, 5_000);
        expect(server.child.signalCode).toBe("SIGKILL");

        server = await spawnServer(db, port);
        const log = async () =>
          (await store.readUpdates({ stream: "all", after: 0, limit: 100 })).map((u) => u.version);
        expect((await log()).length).toBe(headAfterCrash);
        await store.commit(interrupted);
        await store.commit(batch(run(7, 7)));
        expect(await log()).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect((await store.readUpdates({ stream: "all", after: 0, limit: 100 })).map((u) => u.uid)).toEqual(
          run(1, 7).map((u) => u.uid),
        );
        await store.stop();
        const state = await remoteStore(over(scheme, server.url), TOKEN).start();
        expect(state).toMatchObject({ head: 7, oldest: 1 });
        expect(state.resumePoints.get("pods")).toBe("106");
      } finally {
        server.child.kill("SIGKILL");
      }
    },
    30_000,
  );
});

describe("read transactions", () => {
  test("a snapshot read page by page outlives the server's stream idle limit while its reader is slow", async () => {
    const dir = newDir();
    const server = startHranaServer({ path: join(dir, "k.db"), streamIdleMs: 200 });
    try {
      const store = remoteStore(server.url);
      await store.start();
      await store.commit(batch(run(1, 20)));
      const client = createClient({ url: server.url });
      try {
        const pages: number[] = [];
        for await (const page of snapshotPages(client, {}, 10, { keepAliveMs: 50 })) {
          pages.push(page.objects.length);
          // A slow consumer (an SSE client behind a slow link): longer than the stream may idle.
          await Bun.sleep(500);
        }
        expect(pages).toEqual([10, 10, 0]);
      } finally {
        client.close();
      }
      // Leaving the loop closes the transaction's stream (a request the client sends after).
      const deadline = Date.now() + 5_000;
      while (server.streamCount() > 0 && Date.now() < deadline) await Bun.sleep(5);
      expect(server.streamCount()).toBe(0);
    } finally {
      await server.stop();
    }
  });

  test("pages of large objects stay under the server's response limit (sqld: 10 MB per statement)", async () => {
    const server = startHranaServer({ path: join(newDir(), "k.db") });
    try {
      const store = remoteStore(server.url);
      await store.start();
      // 2,000 objects of 6 KB: one page of SQLite-built JSON would be 12 MB.
      const big = run(1, 2_000).map((u) => ({ ...u, object: { data: `${u.uid}:`.padEnd(6_000, "x") } }));
      await store.commit(batch(big));
      const { version, objects } = await store.snapshot({});
      expect([version, objects.length]).toEqual([2_000, 2_000]);
      expect(objects[1_999]?.version).toBe(2_000);
      const updates = await store.readUpdates({ stream: "all", after: 0, limit: 2_000 });
      expect(updates.map((u) => u.version)).toEqual(big.map((u) => u.version));
      expect(updates[0]).toEqual(big[0]!);
    } finally {
      await server.stop();
    }
    // 12 MB through SQLite, the test server and back: 4.8 s alone, past bun test's 5 s default under load.
  }, 30_000);
});
