/**
 * Opening libSQL the way the store needs it.
 *
 * Pitfall (@libsql/client 0.18, `file:`): the client keeps a pool of connections and opens
 * a new one whenever every pooled one is borrowed, e.g. while a `transaction()` holds one.
 * A PRAGMA run with `execute()` reaches one connection only, so `synchronous` set that way
 * silently falls back to FULL on the next connection. Hence:
 * - `journal_mode=WAL` persists in the file: set once, it holds for every connection.
 * - `busy_timeout` goes through the client's `timeout` option, which it applies to every
 *   connection it opens.
 * - `synchronous=NORMAL` cannot be persisted nor set inside a transaction, so every write
 *   goes through a writer client limited to ONE connection, set up here (again on a thread
 *   that replaces a failed one); the store serialises its writes, so a transaction never
 *   leaves that client short of a connection.
 *   That writer runs on its own thread (writer.ts), so commits do not block the event loop.
 *   Reads use a second client on this thread, which WAL lets run beside the writer.
 */
import { createClient, type Client } from "@libsql/client";
import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { keepSqliteAllocations } from "./malloc.ts";
import { releaseClosedConnections } from "./release.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import { startCheckpointer, WAL_RESTART_BYTES, type CheckpointerTestOptions } from "./checkpointer.ts";
import { startWriterThread, type Writer, type WriterSetup } from "./writer.ts";
import { danglingLinkAbove, linkedPath, linkProblem, notAFileProblem, unwritableProblem } from "./writable.ts";
import { BoundedWsClient } from "./ws-client.ts";
import { tildeProblem } from "../../../sdk/tilde.ts";

/** How long a statement waits for another process's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5_000;
/** The writer's page cache (KiB): churn rewrites random pages of a 100 MB table; re-reading them costs. */
const WRITER_CACHE_KIB = 65_536;

/** How long a WAL restart waits for open read transactions; commits wait for it, so keep it short. */
const RESTART_WAIT_MS = 1_000;
/**
 * SQLite's own checkpoint, run inside a commit on the writer's thread once the WAL holds this many frames: the WAL's
 * bound only while the checkpoint worker does not answer, is being replaced, or died too often in a row (see
 * checkpointer.ts).
 */
const BACKSTOP_CHECKPOINT_PAGES = 50_000;
/**
 * A WAL that grew in a burst is truncated back to this once it restarts. Above what the checkpointer lets it reach, so
 * that a restarted WAL rewrites the pages it has (checkpointer.ts says why).
 */
const WAL_SIZE_LIMIT = 2 * WAL_RESTART_BYTES;

export interface Connections {
  /** Every write. On `file:`: one connection, synchronous=NORMAL, on its own thread. */
  writer: Writer;
  /** Reads and read transactions. The writer itself when remote. On `file:`, reads run on this thread. */
  reader: Client;
  /** The journal mode in force (`wal` unless the file system refused it); undefined when remote. */
  journalMode?: string;
  /** On `file:`: the database at its path and, in WAL mode, the WAL and its index beside the file SQLite opened. */
  files?: string[];
  /** Call before a write transaction: may wait for the WAL to be restarted. */
  beforeWrite(): Promise<void>;
  /** The store stops: the writes waiting in beforeWrite, and those after them, wait no more. */
  endWrites(): void;
  /** Store.stopping: from halfway to `deadline`, the writes wait in beforeWrite no more. */
  stopping(deadline: number): void;
  /** `deadline`: Store.stop's. */
  close(deadline?: number): Promise<void>;
}

export function isFileUrl(url: string): boolean {
  return url.toLowerCase().startsWith("file:");
}

/** A `file:` URL's parts: `//host` (when written), the path, `?query` and `#fragment`. */
const FILE_URL = /^file:(?:\/\/([^/?#]*))?([^?#]*)(\?[^#]*)?(#.*)?$/i;

/** The path of a `file:` URL: `file:./rel.db`, `file:/abs.db`, `file:///abs.db`, `file://localhost/abs.db`. */
export function filePathOf(url: string): string {
  return decodeURIComponent(FILE_URL.exec(url)?.[2] ?? "");
}

/**
 * Why a `file:` URL names no file kubemeta can open, before anything is created; undefined when it does. The writer
 * opens the path alone, and the readers' @libsql/client refuses what the path leaves out (a query other than its
 * remote ones, a fragment, a host): found only after the writer had created the file, which was left behind.
 * libSQL applies no SQLite URI parameter (`?mode=ro`), and `?tls=`, `?authToken=` mean nothing for a file: no query.
 */
export function fileUrlProblem(url: string): string | undefined {
  const [, host, path = "", query, fragment] = FILE_URL.exec(url) ?? [];
  if (query !== undefined) {
    // Its keys only: a value may be a token (`?authToken=`).
    const keys = [...new URLSearchParams(query).keys()].map((key) => `?${key}`).join(", ") || "?";
    return (
      `a file: url takes no query (${keys}): its path alone names the store, and libSQL applies no SQLite URI ` +
      "parameters; write a ? in a file's name as %3F"
    );
  }
  if (fragment !== undefined) return `a file: url takes no fragment (${fragment}): write a # in a file's name as %23`;
  if (host !== undefined && host !== "" && host.toLowerCase() !== "localhost")
    return (
      `a file: url names a file on this host, not on ${JSON.stringify(host)} (file://<host>/<path>): ` +
      "write file:./relative/path.db, or file:/absolute/path.db"
    );
  if (path === "") return "a file: url names a file: file:<path>";
  // SQLite's name for a database of one connection: the writer's, the readers' and the checkpointer's would be three.
  if (path === ":memory:")
    return (
      "a file: url names a file, and :memory: is none: kubemeta writes and reads on separate connections, which " +
      "would each get an empty database of their own; give a path (on a tmpfs for a store that need not last)"
    );
  try {
    // The system takes no file name with one: its open failed, said as the file's mode or owner.
    if (decodeURIComponent(path).includes("\0"))
      return "a file: url's path holds a NUL character (written, or as %00), which no file name can";
    const tilde = tildeProblem(decodeURIComponent(path), { scheme: "file:" });
    if (tilde) return `a file: url's path ${tilde}`;
    // SQLite opens `d/` as `d`, made before the mode kubemeta gives the file; the start then failed on `d/-wal`.
    if (/(^|\/)(\.\.?)?$/.test(decodeURIComponent(path)))
      return (
        `a file: url names a file, and ${decodeURIComponent(path)} names a directory: ` +
        `add the database's name, e.g. file:${path}${path.endsWith("/") ? "" : "/"}kubemeta.db`
      );
    return undefined;
  } catch {
    return `a file: url's path is percent-encoded (${path}): write a % in a file's name as %25`;
  }
}

/**
 * Why a remote server's URL cannot be used, said before its client quotes it (@libsql/client names a fragment as
 * written) or an error says only `Invalid URL`; quoting none of it: its query or fragment may hold a token.
 */
export function remoteUrlProblem(url: string): string | undefined {
  if (!URL.canParse(url)) return "must be a URL (a space in it, or a port out of range?)";
  if (url.includes("#")) return "a remote store url takes no fragment (#…): libSQL refuses one";
  return undefined;
}

/** How errors name a store: its file, or its server (never the URL's credentials). */
export function storeName(url: string): string {
  return isFileUrl(url) ? filePathOf(url) : `the libSQL server at ${new URL(url).host}`;
}

/**
 * The first request to a server says more than the client would: @libsql/client reports a
 * refused token as "SERVER_ERROR: Server returned HTTP status 401" over HTTP, and over WebSocket
 * as the code of the server's `hello_error` (`AUTH_JWT_INVALID: …`). The token itself is never echoed.
 */
function remoteOpenError(url: string, error: unknown): Error {
  const host = new URL(url).host;
  const { cause, code } = error as { cause?: { status?: number }; code?: unknown };
  const refusal =
    cause?.status === 401 || cause?.status === 403
      ? `HTTP ${cause.status}`
      : typeof code === "string" && code.startsWith("AUTH_")
        ? code
        : undefined;
  if (refusal)
    return new Error(`the libSQL server at ${host} refused the auth token (${refusal}): check store.authToken`);
  return new Error(`cannot reach the libSQL server at ${host}: ${(error as Error).message}`);
}

/**
 * Bun's fetch waits about five minutes for a server that accepts the connection and never answers, and
 * @libsql/client sets no deadline of its own: a request whose answer (its status line) does not come within `ms`
 * fails instead. Only until the answer: a body read at its reader's pace (a snapshot's pages) is not cut.
 */
function answeredWithin(ms: number) {
  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const late = new AbortController();
    const timer = setTimeout(() => late.abort(new Error(`no answer within ${ms} ms (store.timeout)`)), ms);
    const given = init.signal ?? (input instanceof Request ? input.signal : undefined);
    try {
      return await fetch(input, { ...init, signal: given ? AbortSignal.any([given, late.signal]) : late.signal });
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Creates the database file, empty, readable and writable by kubemeta's user alone, unless it exists: SQLite would make
 * it 0644 less the umask, and it gives the WAL and its index (`-wal`, `-shm`) the database's mode. A file that exists
 * (a store copied in place, an earlier kubemeta's) keeps the mode it has; one that cannot be created here is left to
 * SQLite, whose refusal says why (SQLITE_CANTOPEN, below).
 */
function createPrivately(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
  } catch {}
}

/** For a remote server only. */
export interface RemoteOptions {
  authToken?: string;
  /** How long a request may wait for its answer (none: as long as fetch waits). */
  timeoutMs?: number;
}

/**
 * A remote server's client, its requests bounded by `timeoutMs`: over `http(s)://` (and `libsql://`, which
 * @libsql/client speaks as HTTPS) through its fetch, over `ws(s)://` around each request (ws-client.ts).
 */
function remoteClient(url: string, remote: RemoteOptions): Client {
  const config = { url, authToken: remote.authToken || undefined };
  if (remote.timeoutMs === undefined) return createClient(config);
  if (/^wss?:/i.test(url)) return new BoundedWsClient(config, remote.timeoutMs);
  return createClient({ ...config, fetch: answeredWithin(remote.timeoutMs) });
}

export async function openConnections(
  url: string,
  logger: Logger,
  remote: RemoteOptions = {},
  checkpoints: CheckpointerTestOptions = {},
): Promise<Connections> {
  if (!isFileUrl(url)) {
    const client = remoteClient(url, remote);
    try {
      await client.execute("SELECT 1");
    } catch (error) {
      client.close();
      throw remoteOpenError(url, error);
    }
    return {
      writer: client,
      reader: client,
      beforeWrite: async () => {},
      endWrites: () => {},
      stopping: () => {},
      close: async () => client.close(),
    };
  }
  const problem = fileUrlProblem(url);
  if (problem) throw new Error(`unusable store url: ${problem}`);
  const path = filePathOf(url);
  keepSqliteAllocations();
  try {
    // The store holds what http.tokens guard: what kubemeta creates of it is its user's alone, whatever the umask.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const why =
      danglingLinkAbove(dirname(path)) ?? (code === "EEXIST" || code === "ENOTDIR" ? "a file is in the way" : message);
    throw new Error(`cannot create the directory of ${path}: ${why}`);
  }
  // Before SQLite opens anything: what it would open read-only and leave files beside (writable.ts).
  const opened = linkedPath(path);
  const unwritable = linkProblem(path, opened) ?? notAFileProblem(opened) ?? unwritableProblem(opened);
  if (unwritable) throw new Error(`cannot open ${path}: ${unwritable}`);
  // A link to nothing at the path (planted, or made ahead of the store): the file it names is made privately too.
  createPrivately(opened);
  let journalMode = "";
  const setup: WriterSetup = async (execute, restarted) => {
    if (restarted) logger.warn("the store's writer thread failed; a new one took over the connection", { path });
    const [mode] = Object.values((await execute("PRAGMA journal_mode = WAL")).rows[0] ?? {});
    journalMode = String(mode ?? "").toLowerCase();
    await execute("PRAGMA synchronous = NORMAL");
    await execute(`PRAGMA wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
    await execute(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT}`);
    await execute(`PRAGMA cache_size = -${WRITER_CACHE_KIB}`);
  };
  let writer: Writer;
  try {
    writer = await startWriterThread(path, BUSY_TIMEOUT_MS, setup);
  } catch (error) {
    // libSQL says only `ConnectionFailed("Unable to open connection to local database <path>: 14")`.
    const message = (error as Error).message;
    throw new Error(
      /: 14"?\)?$/.test(message)
        ? `cannot open ${path}: SQLite cannot open or create a database file there (SQLITE_CANTOPEN)`
        : `cannot open ${path}: ${message}`,
    );
  }
  const reader = createClient({ url, timeout: BUSY_TIMEOUT_MS });
  const walPath = `${opened}-wal`;
  const checkpointer = startCheckpointer({ url, walPath, busyTimeoutMs: RESTART_WAIT_MS, logger, ...checkpoints });
  return {
    writer,
    reader,
    journalMode,
    files: journalMode === "wal" ? [path, walPath, `${opened}-shm`] : [path],
    beforeWrite: () => checkpointer.bound(),
    endWrites: () => checkpointer.endWaits(),
    stopping: (deadline) => checkpointer.endWaitsBy(deadline),
    async close(deadline) {
      // Half of what is left at most: the other half is for the close after it, whose three collections and writer's
      // close (folding the WAL in, once the worker stopped) must end by the deadline too.
      await checkpointer.stop(deadline === undefined ? undefined : (Date.now() + deadline) / 2);
      reader.close();
      // Closed, the reader stays open until its statements are collected (release.ts): collected now, the writer is
      // the file's last connection, and its close folds the WAL in and removes it and the shared memory.
      await releaseClosedConnections();
      await writer.close();
    },
  };
}
