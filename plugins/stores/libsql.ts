/**
 * The libSQL store: the update log, the current state of every object, the epoch, stream
 * heads, source resume points and sink cursors, in one embedded SQLite file (`file:`) or
 * a remote libSQL server. Tables and migrations: ./libsql/schema.ts.
 */
import * as v from "valibot";
import type { InStatement } from "@libsql/client";
import { defineStore, WriterFencedError, type CommitBatch, type Store } from "../../sdk/contract.ts";
import { checkContiguous, commitStatements, GUARD_FAILURE, StreamIds, TERM_GUARD_SQL } from "./libsql/commit.ts";
import { isFileUrl, openConnections, storeName, type Connections } from "./libsql/connection.ts";
import { DELETE_UNPINNED, prune, RAISE_HORIZON } from "./libsql/prune.ts";
import {
  digests,
  loadHorizons,
  loadState,
  loadStreamIds,
  readUpdates,
  snapshot,
  snapshotPages,
  streamHorizon,
} from "./libsql/read.ts";
import { migrate } from "./libsql/schema.ts";
import { positiveDuration } from "../../sdk/schema.ts";

/** `file:<path>`, or a remote scheme with a host. */
const URL_PATTERN = /^(?:file:.+|(?:libsql|https?|wss?):\/\/[^/?#]+)/i;

/**
 * Embedded (default):
 * ```yaml
 * store:
 *   type: libsql
 *   url: file:/var/lib/kubemeta/kubemeta.db   # relative paths are relative to the working directory
 * ```
 * The parent directory is created. Keep the file on a persistent volume: a lost file
 * means a new epoch, and every consumer resets.
 *
 * Remote libSQL server (sqld, Turso), when the store must outlive the node or be shared:
 * ```yaml
 * store:
 *   type: libsql
 *   url: libsql://kubemeta-myorg.turso.io     # or https://…, http://host:8080, wss://…, ws://…
 *   authToken: ${LIBSQL_AUTH_TOKEN}            # a JWT; omit for a server without auth
 * ```
 * `libsql://` speaks HTTPS (`?tls=0` and an explicit port for plain HTTP). Replicas (`ha`)
 * share a remote store: each leader raises the store's term, and a commit of any other term
 * is refused in its own transaction, so the log never forks.
 */
const schema = v.strictObject({
  url: v.optional(
    v.pipe(
      v.string(),
      v.check(
        (url) => URL_PATTERN.test(url),
        (issue) =>
          `unsupported store url ${JSON.stringify(issue.input)}: ` +
          "use file:<path>, libsql://<host>, http(s)://<host> or ws(s)://<host>",
      ),
      v.description(
        "`file:<path>` (embedded; its directory is created) on a persistent volume, " +
          "or a remote libSQL server: `libsql://…`, `https://…`, `wss://…`.",
      ),
    ),
    "file:./data/kubemeta.db",
  ),
  authToken: v.optional(
    v.pipe(v.string(), v.description("Token of a remote server, e.g. `${LIBSQL_AUTH_TOKEN}`; ignored for `file:`.")),
  ),
  timeout: v.optional(
    v.pipe(
      positiveDuration,
      v.description(
        "How long a remote server may take to answer a request, its work included: one that accepts the " +
          "connection and never answers fails the open, a commit (retried) or a read after this; ignored for " +
          "`file:` and `ws(s)://`.",
      ),
    ),
    "60s",
  ),
});

function newEpoch(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export default defineStore({
  type: "libsql",
  description: "libSQL: an embedded SQLite file (file:) or a remote libSQL server (libsql://, https://).",
  schema,
  example: { url: "file:./data/kubemeta.db" },
  unshareable: (config) =>
    isFileUrl(config.url)
      ? `${config.url} is a file on one pod's volume; use a remote libSQL server (libsql://, https://)`
      : undefined,
  create(config, ctx): Store {
    const commitSeconds = ctx.metrics.histogram(
      "kubemeta_store_commit_seconds",
      "Time to commit one batch of updates to the store.",
    );
    const pruned = ctx.metrics.counter(
      "kubemeta_store_pruned_updates_total",
      "Updates removed from the log by retention.",
    );
    let opening: Promise<Connections> | undefined;
    let connections: Connections | undefined;
    /** Highest committed version, as this (only) writer left it. */
    let head = 0;
    /** The term this process writes under: the store's when it opened, raised by lead(). */
    let term = 0;
    let streamIds = new StreamIds([]);
    /** Writes run one at a time: the gap check reads `head`, and the file writer has one connection. */
    let writes: Promise<unknown> = Promise.resolve();

    async function serially<T>(work: (c: Connections) => Promise<T>): Promise<T> {
      const c = open();
      const run = writes.then(async () => {
        await c.beforeWrite();
        return work(c);
      });
      writes = run.catch(() => {});
      return run;
    }

    function open(): Connections {
      if (!connections) throw new Error("the libsql store is not started");
      return connections;
    }

    async function connect(): Promise<Connections> {
      const c = await openConnections(config.url, ctx.logger, {
        authToken: config.authToken,
        timeoutMs: config.timeout,
      });
      try {
        if (c.journalMode !== undefined && c.journalMode !== "wal") {
          ctx.logger.warn("the file system refused WAL mode: readers will block commits", {
            journalMode: c.journalMode,
          });
        }
        await migrate(c.writer);
        await c.writer.execute({
          sql: "INSERT INTO meta (id, epoch, head) VALUES (1, ?, 0) ON CONFLICT (id) DO NOTHING",
          args: [newEpoch()],
        });
        return c;
      } catch (error) {
        await c.close();
        // The connection is open, so the error is about what the database holds: say which one.
        throw new Error(`cannot use ${storeName(config.url)}: ${(error as Error).message}`, { cause: error });
      }
    }

    /**
     * One transaction. On `file:` it runs on the writer's thread (libsql/writer.ts), so even a big
     * batch leaves the event loop free.
     */
    async function write(c: Connections, groups: InStatement[][]): Promise<void> {
      await c.writer.batch(groups.flat(), "write");
    }

    /** Why a guarded commit was refused: a later writer's term (fenced), or a head another writer moved. */
    async function refusal(c: Connections): Promise<Error> {
      const row = (await c.writer.execute("SELECT head, term FROM meta WHERE id = 1")).rows[0];
      const stored = { head: Number(row?.head), term: Number(row?.term) };
      if (stored.term !== term) return new WriterFencedError(term, stored.term);
      return new Error(
        `commit refused: the stored head is ${stored.head}, not ${head} (is another kubemeta writing to this store?)`,
      );
    }

    /** The state as stored, and the writer's view of it brought in line. */
    async function load(c: Connections) {
      const state = await loadState(c.reader);
      head = state.head;
      streamIds = new StreamIds(await loadStreamIds(c.reader));
      return state;
    }

    /** True when the store's head is the batch's last version and that version is the batch's last update. */
    async function alreadyStored(c: Connections, batch: CommitBatch): Promise<boolean> {
      const last = batch.updates[batch.updates.length - 1];
      if (!last) return false;
      const { rows } = await c.writer.execute({
        sql:
          "SELECT u.kind, u.uid, u.type FROM meta JOIN updates AS u ON u.version = meta.head " +
          "WHERE meta.id = 1 AND meta.head = ?",
        args: [last.version],
      });
      const row = rows[0];
      return row !== undefined && row.kind === last.kind && row.uid === last.uid && row.type === last.type;
    }

    return {
      async start() {
        opening ??= connect().catch((error) => {
          opening = undefined;
          throw error;
        });
        connections = await opening;
        const state = await load(connections);
        term = Number((await connections.reader.execute("SELECT term FROM meta WHERE id = 1")).rows[0]?.term ?? 0);
        ctx.logger.info("libsql store open", {
          url: isFileUrl(config.url) ? config.url : new URL(config.url).host,
          epoch: state.epoch,
          head,
        });
        return state;
      },

      async stop() {
        const pending = opening;
        opening = undefined;
        if (!pending) return;
        const c = await pending.catch(() => undefined);
        await writes;
        connections = undefined;
        await c?.close();
      },

      lead() {
        return serially(async (c) => {
          const { rows } = await c.writer.execute("UPDATE meta SET term = term + 1 WHERE id = 1 RETURNING term");
          term = Number(rows[0]?.term);
          const state = await load(c);
          ctx.logger.info("writing to the store", { term, head });
          return state;
        });
      },

      async position() {
        const row = (await open().reader.execute("SELECT head, pruned_through FROM meta WHERE id = 1")).rows[0];
        return { head: Number(row?.head ?? 0), oldest: Number(row?.pruned_through ?? 0) + 1 };
      },

      commit(batch) {
        return serially(async (c) => {
          checkContiguous(batch, head);
          if (batch.updates.length === 0 && batch.resumePoints.size === 0) return;
          const groups = commitStatements(batch, head, term, streamIds);
          const started = performance.now();
          try {
            await write(c, groups);
            streamIds.settle(true);
          } catch (error) {
            const refused = (error as Error).message?.includes(GUARD_FAILURE);
            // A remote commit can land and still be reported failed (the connection cut after COMMIT):
            // its retry finds exactly this batch stored, which is success, not a second writer.
            if (refused && (await alreadyStored(c, batch))) {
              streamIds.settle(true);
            } else {
              streamIds.settle(false);
              throw refused ? await refusal(c) : error;
            }
          }
          commitSeconds.observe((performance.now() - started) / 1000);
          head += batch.updates.length;
        });
      },

      readUpdates: async (query) => readUpdates(open().reader, query),
      horizons: async () => loadHorizons(open().reader),
      horizon: async (stream) => streamHorizon(open().reader, stream),
      snapshot: async (query) => snapshot(open().reader, query),
      snapshotPages: (query, pageSize) => snapshotPages(open().reader, query, pageSize),
      digests: async () => digests(open().reader),

      async cursor(name) {
        const row = (await open().reader.execute({ sql: "SELECT version FROM cursors WHERE name = ?", args: [name] }))
          .rows[0];
        return row ? Number(row.version) : undefined;
      },

      async saveCursor(name, version) {
        await serially((c) =>
          c.writer.execute({
            sql:
              "INSERT INTO cursors (name, version) VALUES (?, ?) " +
              "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            args: [name, version],
          }),
        );
      },

      async prune(policy) {
        const result = await prune(
          {
            reader: open().reader,
            // Fenced like a commit: a deposed writer's retention (its own policy) must not prune the new one's log.
            deleteThrough: (after, through) =>
              serially(async (c) => {
                try {
                  const [, deleted] = await c.writer.batch(
                    [
                      { sql: TERM_GUARD_SQL, args: [term] },
                      { sql: DELETE_UNPINNED, args: [after, through] },
                      { sql: RAISE_HORIZON, args: [through] },
                    ],
                    "write",
                  );
                  return deleted!.rowsAffected;
                } catch (error) {
                  throw (error as Error).message?.includes(GUARD_FAILURE) ? await refusal(c) : error;
                }
              }),
          },
          policy,
        );
        pruned.inc(undefined, result.removed);
        return result;
      },
    };
  },
});
