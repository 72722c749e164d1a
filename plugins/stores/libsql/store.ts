/**
 * The libSQL store as it runs (libsql.ts declares it): its connections opened and made, its reads checked against a
 * file replaced under it, and its writes through the one fenced writer (fenced-writes.ts).
 */
import type { Store, StoreContext } from "../../../sdk/contract.ts";
import { isFileUrl, openConnections, storeName, type Connections } from "./connection.ts";
import type { CheckpointerTestOptions } from "./checkpointer.ts";
import { watchFiles, type FileWatch } from "./file-identity.ts";
import { FencedWrites } from "./fenced-writes.ts";
import { newEpochAt, randomEpoch } from "./new-epoch.ts";
import { prune } from "./prune.ts";
import { digests, loadHorizons, readUpdates, snapshot, snapshotPages, streamHorizon } from "./read.ts";
import { checkSchema, migrate, SCHEMA_VERSION } from "./schema.ts";

/** The store's config, as libsql.ts's schema gives it (`timeout` in milliseconds). */
export interface LibsqlConfig {
  url: string;
  authToken?: string;
  timeout: number;
}

/** `checkpoints`: for tests (a store plugin of their own), what the `file:` store's WAL checkpointer is given. */
export function createLibsqlStore(
  config: LibsqlConfig,
  ctx: StoreContext,
  checkpoints?: CheckpointerTestOptions,
): Store {
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
    const c = await openConnections(
      config.url,
      ctx.logger,
      { authToken: config.authToken, timeoutMs: config.timeout },
      checkpoints,
    );
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

    stopping: (deadline) => connections?.stopping(deadline),

    async stop(deadline) {
      const pending = opening;
      opening = undefined;
      if (!pending) {
        file?.stop();
        return;
      }
      const c = await pending.catch(() => undefined);
      c?.endWrites();
      await writes.settled();
      lastLook();
      connections = undefined;
      await c?.close(deadline);
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
}
