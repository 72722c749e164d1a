/**
 * The libSQL store: the update log, the current state of every object, the epoch, stream
 * heads, source resume points and sink cursors, in one embedded SQLite file (`file:`) or
 * a remote libSQL server. Tables and migrations: ./libsql/schema.ts; the writes, fenced
 * against a second writer: ./libsql/fenced-writes.ts.
 */
import * as v from "valibot";
import { defineStore, type Store } from "../../sdk/contract.ts";
import {
  fileUrlProblem,
  isFileUrl,
  openConnections,
  remoteUrlProblem,
  storeName,
  type Connections,
} from "./libsql/connection.ts";
import { watchFiles, type FileWatch } from "./libsql/file-identity.ts";
import { FencedWrites } from "./libsql/fenced-writes.ts";
import { newEpochAt, randomEpoch } from "./libsql/new-epoch.ts";
import { prune } from "./libsql/prune.ts";
import { digests, loadHorizons, readUpdates, snapshot, snapshotPages, streamHorizon } from "./libsql/read.ts";
import { checkSchema, migrate, SCHEMA_VERSION } from "./libsql/schema.ts";
import { positiveDuration } from "../../sdk/schema.ts";
import { clearTextHost, urlCredentialPlaces } from "../../protocol/clear-text.ts";
import { redactServer } from "../../protocol/subjects.ts";

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
          `unsupported store url ${JSON.stringify(redactServer(String(issue.input)))}: ` +
          "use file:<path>, libsql://<host>, http(s)://<host> or ws(s)://<host>",
      ),
      v.rawCheck(({ dataset, addIssue }) => {
        const url = dataset.typed ? dataset.value : undefined;
        const problem = url === undefined ? undefined : isFileUrl(url) ? fileUrlProblem(url) : remoteUrlProblem(url);
        if (problem) addIssue({ message: problem });
      }),
      v.description(
        "`file:<path>` (embedded; its directory is created; no `?query`) on a persistent volume, " +
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
          "`file:`. Over `ws(s)://` a request given up closes its connection, failing the others waiting on it.",
      ),
    ),
    "60s",
  ),
});

export default defineStore({
  type: "libsql",
  description: "libSQL: an embedded SQLite file (file:) or a remote libSQL server (libsql://, https://).",
  schema,
  example: { url: "file:./data/kubemeta.db" },
  unshareable: (config) =>
    isFileUrl(config.url)
      ? `${config.url} is a file on one pod's volume; use a remote libSQL server (libsql://, https://)`
      : undefined,
  warnings: ({ url, authToken }) => {
    // A libsql:// url speaks HTTPS unless `?tls=0`; @libsql/client takes a token from the url's query too.
    const plain = new URL(url).searchParams.get("tls") === "0" ? ["libsql:"] : [];
    const host = isFileUrl(url) ? undefined : clearTextHost(url, plain);
    const sent = [...(authToken ? ["authToken"] : []), ...urlCredentialPlaces(url)];
    if (host === undefined || sent.length === 0) return [];
    return [
      `${sent.join(", ")} sent to ${host} unencrypted (no TLS): anyone on the network path reads them; ` +
        "use an https://, wss:// or libsql:// url (without ?tls=0)",
    ];
  },
  create(config, ctx): Store {
    const commitSeconds = ctx.metrics.histogram(
      "kubemeta_store_commit_seconds",
      "Time to commit one batch of updates to the store.",
    );
    const pruned = ctx.metrics.counter(
      "kubemeta_store_pruned_updates_total",
      "Updates removed from the log by retention.",
    );
    pruned.inc(undefined, 0);
    let opening: Promise<Connections> | undefined;
    let connections: Connections | undefined;

    function open(): Connections {
      if (!connections) throw new Error("the libsql store is not started");
      return connections;
    }

    /** A `file:` store's files as opened: once one is deleted or replaced, nothing is written (file-identity.ts). */
    let file: FileWatch | undefined;
    const writes = new FencedWrites(
      open,
      ctx.logger,
      commitSeconds,
      () => file?.checkSameFiles(),
      (error) => ctx.replaced?.(error),
    );

    /**
     * A read's result, once the file it may have come from is known to be the one opened: a connection the readers'
     * pool opened since the file was replaced reads the other database.
     */
    async function checked<T>(read: (reader: Connections["reader"]) => Promise<T>): Promise<T> {
      const result = await read(open().reader);
      file?.checkSameFiles();
      return result;
    }

    async function* checkedPages<T>(pages: AsyncIterable<T>): AsyncIterable<T> {
      for await (const page of pages) {
        file?.checkSameFiles();
        yield page;
      }
    }

    /**
     * A replacement since the last look (a shutdown under way, the file deleted while the sinks drained) is told as
     * one found while running: what was committed since went to the file nothing opens again, and the close cannot
     * save it, so the stop must not look like a clean one.
     */
    function lastLook(): void {
      try {
        file?.checkSameFiles();
      } catch {
        // Told to ctx.replaced already.
      } finally {
        file?.stop();
      }
    }

    /** Migrates an earlier kubemeta's store, and says so: from then on that kubemeta cannot open it (a rollback). */
    async function migrateSaid(writer: Connections["writer"]): Promise<void> {
      const found = await migrate(writer);
      if (found === 0 || found === SCHEMA_VERSION) return;
      ctx.logger.info("store migrated from an earlier kubemeta's schema; that kubemeta cannot open it any more", {
        from: found,
        to: SCHEMA_VERSION,
      });
    }

    /** The store opened, and made if new; `checking` (`--check`): an existing store's schema left as it is. */
    async function connect(checking = false): Promise<{ c: Connections; notes: string[] }> {
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
        let notes: string[] = [];
        if (checking) notes = await checkSchema(c.writer);
        else await migrateSaid(c.writer);
        await c.writer.execute({
          sql: "INSERT INTO meta (id, epoch, head) VALUES (1, ?, 0) ON CONFLICT (id) DO NOTHING",
          args: [randomEpoch()],
        });
        if (!checking && c.files) file = watchFiles(c.files, (error) => ctx.replaced?.(error), ctx.logger);
        return { c, notes };
      } catch (error) {
        await c.close();
        // The connection is open, so the error is about what the database holds: say which one.
        throw new Error(`cannot use ${storeName(config.url)}: ${(error as Error).message}`, { cause: error });
      }
    }

    return {
      async start() {
        opening ??= connect().then(
          ({ c }) => c,
          (error) => {
            opening = undefined;
            throw error;
          },
        );
        connections = await opening;
        const state = await writes.start(connections);
        ctx.logger.info("libsql store open", {
          url: isFileUrl(config.url) ? config.url : new URL(config.url).host,
          epoch: state.epoch,
          head: writes.head,
        });
        return state;
      },

      async check() {
        const { c, notes } = await connect(true);
        try {
          // A store at this schema is read as a start reads it (its state, nothing written): a damaged one is said now.
          if (notes.length === 0) await writes.start(c);
        } finally {
          await c.close();
        }
        return notes;
      },

      async stop() {
        const pending = opening;
        opening = undefined;
        if (!pending) {
          file?.stop();
          return;
        }
        const c = await pending.catch(() => undefined);
        await writes.settled();
        lastLook();
        connections = undefined;
        await c?.close();
      },

      lead: (check) => writes.lead(check),

      newEpoch: () => newEpochAt(config.url, ctx.logger, { authToken: config.authToken, timeoutMs: config.timeout }),

      async position() {
        const read = checked((reader) =>
          reader.execute("SELECT head, pruned_through, epoch, whole FROM meta WHERE id = 1").catch((error: Error) => {
            // Wiped while open: no replica that is running creates the schema again, each must start over.
            if (String(error.message).includes("no such table: meta")) return { rows: [] };
            throw error;
          }),
        );
        const row = (await read).rows[0];
        return {
          head: Number(row?.head ?? 0),
          oldest: Number(row?.pruned_through ?? 0) + 1,
          epoch: String(row?.epoch ?? ""),
          whole: Number(row?.whole ?? 0) === 1,
        };
      },

      commit: (batch) => writes.commit(batch),

      readUpdates: (query) => checked((reader) => readUpdates(reader, query)),
      horizons: () => checked(loadHorizons),
      horizon: (stream) => checked((reader) => streamHorizon(reader, stream)),
      snapshot: (query) => checked((reader) => snapshot(reader, query)),
      snapshotPages: (query, pageSize) => checkedPages(snapshotPages(open().reader, query, pageSize)),
      digests: () => checked(digests),

      async cursor(name) {
        const sql = "SELECT version FROM cursors WHERE name = ?";
        const row = (await checked((reader) => reader.execute({ sql, args: [name] }))).rows[0];
        return row ? Number(row.version) : undefined;
      },

      async saveCursor(name, version) {
        await writes.serially((c) =>
          c.writer.execute({
            sql:
              "INSERT INTO cursors (name, version) VALUES (?, ?) " +
              "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            args: [name, version],
          }),
        );
      },

      async prune(policy, signal) {
        const result = await prune(
          { reader: open().reader, deleteThrough: (after, through) => writes.deleteThrough(after, through) },
          policy,
          signal,
        );
        pruned.inc(undefined, result.removed);
        return result;
      },
    };
  },
});
