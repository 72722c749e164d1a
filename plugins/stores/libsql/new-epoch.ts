/**
 * `main.ts new-epoch` for the libSQL store (Store.newEpoch): the store's epoch replaced by a new random one, in the
 * transaction that raises its term, its log and versions kept. A `file:` store is opened alone, in SQLite's exclusive
 * locking mode: every connection of a running kubemeta holds a shared lock on a WAL database for as long as it is open,
 * so the exclusive lock is refused while one runs (and while any other process has the file open), and a kubemeta that
 * starts meanwhile waits for it. A remote server tells no such thing: the raised term fences a writer still running.
 */
import Database from "libsql";
import { statSync } from "node:fs";
import type { InStatement } from "@libsql/client";
import type { EpochChange } from "../../../sdk/contract.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import { filePathOf, fileUrlProblem, isFileUrl, openConnections, storeName, type RemoteOptions } from "./connection.ts";
import { releaseClosedConnections } from "./release.ts";
import { runStatement } from "./run-statement.ts";
import { migrate } from "./schema.ts";
import { linkedPath, notAFileProblem, unwritableProblem } from "./writable.ts";
import type { Writer } from "./writer.ts";

/**
 * How long the exclusive lock is waited for: enough for a kubemeta that is stopping to close the file, too little to
 * be mistaken for a hang while one runs (it holds its lock until it stops).
 */
const LOCK_WAIT_MS = 2_000;

/** A store's epoch: 16 random hex digits. */
export function randomEpoch(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Gives the store at `url` a new epoch; throws, changing nothing, when it is not a kubemeta store or is in use. */
export async function newEpochAt(url: string, logger: Logger, remote: RemoteOptions): Promise<EpochChange> {
  if (isFileUrl(url)) return newFileEpoch(url);
  const connections = await openConnections(url, logger, remote);
  try {
    return await renewed(connections.writer, storeName(url));
  } finally {
    await connections.close();
  }
}

async function newFileEpoch(url: string): Promise<EpochChange> {
  const problem = fileUrlProblem(url);
  if (problem) throw new Error(`unusable store url: ${problem}`);
  const path = filePathOf(url);
  // The store's folder, or a FIFO, is said as what it is, as --check and a start say it: "no store" sent the operator
  // looking for a file that was never meant to be there.
  const notAFile = notAFileProblem(linkedPath(path));
  if (notAFile) throw new Error(`cannot open ${path}: ${notAFile}`);
  // libSQL would create an empty database there: a path mistyped would be said to hold no store only after that.
  if (!isFile(path)) throw new Error(`no store at ${path}: new-epoch gives an existing store a new epoch`);
  const unwritable = unwritableProblem(linkedPath(path));
  if (unwritable) throw new Error(`cannot open ${path}: ${unwritable}`);
  const db = new Database(path, { timeout: LOCK_WAIT_MS });
  try {
    try {
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      // Taken now and held until the connection closes (exclusive locking mode releases nothing before).
      db.exec("BEGIN EXCLUSIVE");
      db.exec("COMMIT");
    } catch (error) {
      // SQLite's own words (`file is not a database`) name no file: the operator ran this on one path among others.
      if ((error as { code?: string }).code !== "SQLITE_BUSY")
        throw new Error(`cannot open ${path}: ${(error as Error).message}`, { cause: error });
      throw new Error(
        `${path} is open in another process (a kubemeta serving it, or a tool reading it): stop it, then run ` +
          "new-epoch again",
      );
    }
    const change = await renewed(exclusiveWriter(db), path);
    // The file alone is the store then, whether or not the close below gets to fold the WAL (release.ts).
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return change;
  } finally {
    db.close();
    // Closed for good (its statements collected): the close folds the WAL into the file and removes it.
    await releaseClosedConnections();
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The store behind `writer` (migrated as a start would) with a new epoch and a raised term, in one transaction. */
async function renewed(writer: Writer, name: string): Promise<EpochChange> {
  const { rows } = await writer.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
  if (rows.length === 0) throw new Error(`${name} holds no kubemeta store: a new one gets its epoch when created`);
  await migrate(writer).catch((error: Error) => {
    throw new Error(`cannot use ${name}: ${error.message}`, { cause: error });
  });
  const epoch = randomEpoch();
  const [before] = await writer.batch(
    [
      "SELECT epoch, head FROM meta WHERE id = 1",
      { sql: "UPDATE meta SET epoch = ?, term = term + 1 WHERE id = 1", args: [epoch] },
    ],
    "write",
  );
  const row = before?.rows[0];
  if (!row) throw new Error(`${name} has no epoch yet (created, never opened): kubemeta gives it one when it starts`);
  return { previous: String(row.epoch), epoch, head: Number(row.head) };
}

/** The Writer the migrations and the change run through, on the one connection that holds the lock. */
function exclusiveWriter(db: Database.Database): Writer {
  const execute = (statement: InStatement) => runStatement((sql) => db.prepare(sql), statement);
  return {
    execute: async (statement) => execute(statement),
    async batch(statements) {
      db.exec("BEGIN IMMEDIATE");
      try {
        const results = statements.map(execute);
        db.exec("COMMIT");
        return results;
      } catch (error) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw error;
      }
    },
    close() {
      db.close();
    },
  };
}
