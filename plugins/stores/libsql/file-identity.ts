/**
 * A `file:` store's files, watched for being deleted or replaced under the running store (an operator cleaning the data
 * directory, a backup restored in place, a volume remounted). SQLite goes on with the file it opened: what it commits
 * then is lost at the next start, and a connection opened later (one the readers' pool adds, a writer thread that
 * replaces a failed one) opens what the path names now, another database. So the store compares the device and inode
 * at the path with those it opened, before each write, after each read and every few seconds, and once they differ it
 * is replaced: it writes nothing more, serves no read it made since, and tells the host, which stops
 * (StoreContext.replaced).
 */
import { statSync } from "node:fs";
import { StoreReplacedError } from "../../../sdk/contract.ts";
import { type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";

/** How often the file is looked at besides around writes and reads: a stat, so that an idle store finds out too. */
export const FILE_CHECK_INTERVAL_MS = 2_000;

interface FileId {
  dev: number;
  ino: number;
}

/** What is at a path now: a file, none (`gone` says how), or a stat that failed and tells neither. */
type Look = { id: FileId } | { gone: string } | { unknown: NodeJS.ErrnoException };

function look(path: string): Look {
  try {
    const { dev, ino } = statSync(path);
    return { id: { dev, ino } };
  } catch (error) {
    const failed = error as NodeJS.ErrnoException;
    // Nothing there: the file deleted, its directory too, or a file in the directory's place.
    if (failed.code === "ENOENT" || failed.code === "ENOTDIR") return { gone: "was deleted" };
    // NFS: the handle this client held of the file, or of a directory above it, names nothing on the server now.
    if (failed.code === "ESTALE") return { gone: "is stale (ESTALE: deleted or replaced on its file server)" };
    // A directory denied (EACCES), a failing disk (EIO): the file may be the one opened or not.
    return { unknown: failed };
  }
}

const describe = ({ dev, ino }: FileId) => `inode ${ino} on device ${dev}`;

/** How the file at `path` differs from the one opened; undefined when it is that one (or cannot be told). */
function change(path: string, opened: FileId, unknown: (error: NodeJS.ErrnoException) => void): string | undefined {
  const now = look(path);
  const was = `the store opened ${describe(opened)}`;
  if ("gone" in now) return `${path} ${now.gone} (${was})`;
  if ("unknown" in now) {
    unknown(now.unknown);
    return undefined;
  }
  if (now.id.dev === opened.dev && now.id.ino === opened.ino) return undefined;
  return `${path} is another file now (${describe(now.id)}; ${was})`;
}

export interface FileWatch {
  /** Throws StoreReplacedError once the file is no longer the one opened; the first time, tells `replaced` too. */
  checkSameFiles(): void;
  stop(): void;
}

/**
 * Watches the files at `paths` as they are now: call once the store has them open. The database, and in WAL mode its
 * WAL (one deleted alone leaves the commits since in the one SQLite has open, where a connection opened later finds
 * none) and its shared memory, the WAL's index and the locks that keep writers apart. This process's connections
 * share the one first opened, deleted or not, but another process's (a second kubemeta, a tool) would build an index
 * of its own: each side then misses what the other commits, and a write of one overwrites the other's in the WAL (a
 * second kubemeta's raised term went unseen, and was lost under the next commit here).
 */
export function watchFiles(paths: string[], replaced: (error: StoreReplacedError) => void, logger: Logger): FileWatch {
  const opened = paths.flatMap((path) => {
    const now = look(path);
    return "id" in now ? [{ path, id: now.id }] : [];
  });
  // Looked at again and again (every write, read and 2 s): said once a minute, until a look tells.
  const warn = rateLimitedWarn(logger);
  const unknown = (path: string) => (error: NodeJS.ErrnoException) =>
    warn("cannot tell whether the store's files are the ones it opened; it goes on, and looks again", {
      path,
      error,
    });
  let found: StoreReplacedError | undefined;
  const checkSameFiles = () => {
    if (found) throw found;
    const what = opened.map(({ path, id }) => change(path, id, unknown(path))).filter((change) => change !== undefined);
    if (what.length === 0) return;
    found = new StoreReplacedError(
      `the store's files changed under this process: ${what.join(", ")}; what it commits would be lost, and what ` +
        "it reads be another database's: restart kubemeta to serve what the path holds now",
    );
    clearInterval(timer);
    replaced(found);
    throw found;
  };
  const timer = setInterval(() => {
    try {
      checkSameFiles();
    } catch {
      // Told to `replaced` already.
    }
  }, FILE_CHECK_INTERVAL_MS);
  timer.unref();
  return { checkSameFiles, stop: () => clearInterval(timer) };
}
