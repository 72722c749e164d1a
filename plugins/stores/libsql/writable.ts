/**
 * Whether kubemeta may write a `file:` store's files, asked before SQLite opens any of them. SQLite opens a file it
 * may not write read-only without a word, and creates the WAL and its index (`-wal`, `-shm`) with the database's own
 * mode: a start on a read-only file failed at its first write (`attempt to write a readonly database`, naming
 * nothing) and left a read-only `-shm` behind it, which failed the next start the same way once the file's mode was
 * fixed. Asked first, nothing is opened, so nothing is left; a `-shm` or `-wal` that such a start left (an earlier
 * kubemeta's, a tool's) is named with what to do about it.
 */
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { kindOf } from "../../../sdk/credential-file.ts";

/** The kernel's own limit on the symbolic links one lookup follows. */
const MAX_LINKS = 40;

/**
 * The file SQLite opens for the store at `path`: a symbolic link there (a link to a link too) followed, as SQLite does,
 * which creates the file it points to if it is missing and puts the WAL and its index (`-wal`, `-shm`) beside that
 * file, not beside the link. The path itself when it is no link, or one whose directory cannot be looked at.
 */
export function linkedPath(path: string): string {
  let at = path;
  for (let links = 0; links < MAX_LINKS; links++) {
    try {
      // Against the directory's real path: `..` in a link leads from where the link is, not from a lexical parent.
      at = resolve(realpathSync(dirname(at)), readlinkSync(at));
    } catch {
      return at;
    }
  }
  return at;
}

/**
 * Why the file a symbolic link at `path` names cannot be made: its directory does not exist. kubemeta creates the
 * directory of the path it is given, not of where a link there leads (a link planted or made ahead of the store).
 */
export function linkProblem(path: string, opened: string): string | undefined {
  if (opened === path || refusal(dirname(opened), constants.F_OK) !== "missing") return undefined;
  return (
    `it is a symbolic link to ${opened}, whose directory ${dirname(opened)} does not exist: create that directory, ` +
    "or give store.url the file's own path"
  );
}

/**
 * A symbolic link to nothing at `dir` or above it (a volume not mounted where the link leads), which `mkdir -p` fails
 * on as a file in the way (EEXIST) or a directory missing (ENOENT); undefined when there is none.
 */
export function danglingLinkAbove(dir: string): string | undefined {
  for (let at = dir; at !== dirname(at); at = dirname(at)) {
    const link = lstatSync(at, { throwIfNoEntry: false });
    if (!link) continue;
    if (!link.isSymbolicLink() || existsSync(at)) return undefined;
    return `${at} is a symbolic link to ${readlinkSync(at)}, which does not exist`;
  }
  return undefined;
}

/** What the file SQLite would open at `opened` is instead of one (SQLite said `disk I/O error` of a FIFO). */
export function notAFileProblem(opened: string): string | undefined {
  let info: ReturnType<typeof statSync>;
  try {
    info = statSync(opened, { throwIfNoEntry: false });
  } catch {
    // A directory denied (EACCES): said by unwritableProblem.
    return undefined;
  }
  if (!info || info.isFile()) return undefined;
  return `it is ${kindOf(info)}, not a regular file: give store.url the path of the database's file`;
}

/** The code of the refusal to access `path` in `mode` (EACCES, EROFS…); "missing" when nothing is there. */
function refusal(path: string, mode: number): string | undefined {
  try {
    accessSync(path, mode);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown";
    return code === "ENOENT" ? "missing" : code;
  }
}

function why(code: string): string {
  if (code === "EROFS") return "EROFS: a read-only file system";
  const uid = process.getuid?.();
  return `${code}: its mode or owner${uid === undefined ? "" : `; kubemeta runs as uid ${uid}`}`;
}

/**
 * Why kubemeta may not write the store at `path` (its directory exists); undefined when it may, as far as the modes
 * tell. The directory matters when SQLite has a file to create in it: the store, or its WAL and index, which a clean
 * stop removes.
 */
export function unwritableProblem(path: string): string | undefined {
  const dir = dirname(path);
  const name = basename(path);
  const files = [path, `${path}-wal`, `${path}-shm`].map((file) => ({ file, code: refusal(file, constants.W_OK) }));
  const dirCode = refusal(dir, constants.W_OK | constants.X_OK);
  if (dirCode !== undefined && files.some(({ code }) => code !== undefined))
    return (
      `its directory ${dir} cannot be written (${why(dirCode)}), where SQLite creates ${name}, ${name}-wal and ` +
      `${name}-shm: make it writable by kubemeta's user`
    );
  const problems = files.flatMap(({ file, code }) => {
    if (code === undefined || code === "missing") return [];
    if (file === path) return [`kubemeta cannot write it (${why(code)}): make it writable by kubemeta's user`];
    const denied = `${file} cannot be written (${why(code)})`;
    return file.endsWith("-shm")
      ? [
          `${denied}, left by a process that could not write the store: delete it while no process has the store ` +
            "open (it is the WAL's index, built again at the next open), or make it writable by kubemeta's user",
        ]
      : [`${denied}: make it writable by kubemeta's user (do not delete it: it may hold commits not yet in ${name})`];
  });
  return problems.length > 0 ? problems.join("; ") : undefined;
}
