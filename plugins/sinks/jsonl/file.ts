/** The file a `jsonl` sink's path names, as the config is checked (plugins/sinks/jsonl.ts). */
import { fstatSync, readlinkSync, realpathSync, statSync, type Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

/** Links followed on the way to a file not made yet: past them, a loop of links is taken as it is written. */
const MAX_LINKS = 40;

/**
 * The file `path` writes, through the symbolic links on its way (relative paths from the working directory), so that
 * two paths to one file say the same. One not made yet is its nearest existing directory's real path and the rest; a
 * link to nothing is where it leads, since appending creates that file.
 */
export function realFile(path: string, links = 0): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    const inRealParent = join(realFile(parent, links), basename(absolute));
    const target = links < MAX_LINKS ? linkTarget(inRealParent) : undefined;
    return target === undefined ? inRealParent : realFile(resolve(dirname(inRealParent), target), links + 1);
  }
}

/** Where a symbolic link leads, or undefined for anything else (or nothing). */
function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Why `found` (what `path` names) is a FIFO no batch may be written to, or undefined. Each batch opens the path and
 * closes it: a named pipe's reader sees its end at the first close and exits, and what the next batches write with no
 * reader is dropped at their close, the cursor moving past it all the same. A pipe the process holds open for good,
 * its own stdout or stderr (`/dev/stderr` in a container), keeps its reader.
 */
export function fifoProblem(path: string, found: Stats): string | undefined {
  if (!found.isFIFO() || heldStream(found) !== undefined) return undefined;
  return (
    `${path} is a FIFO (a named pipe), not a file to append to: its reader would see the end after each batch, ` +
    `and the next ones would be lost; write path: - and pipe kubemeta's stdout to it`
  );
}

/** The process's own stdout (1) or stderr (2) when `found` is what it writes to, else undefined. */
function heldStream(found: Stats): 1 | 2 | undefined {
  return ([1, 2] as const).find((fd) => sameFile(fd, found));
}

/**
 * Which of the process's own stdout (1) and stderr (2) `path` names (`/dev/stderr`, or the file `>` sent it to),
 * whatever that is: a pipe, a file, the journal's socket.
 */
export function heldStreamAt(path: string): 1 | 2 | undefined {
  try {
    return heldStream(statSync(path));
  } catch {
    return undefined;
  }
}

function sameFile(fd: number, found: Stats): boolean {
  try {
    const held = fstatSync(fd);
    return held.dev === found.dev && held.ino === found.ino;
  } catch {
    return false;
  }
}

/**
 * Throws what makes `path` no file to append to wherever it is checked: a directory, a FIFO, or a file where a
 * directory on its way belongs. Nothing made yet is no error: the first write makes the file and its directories.
 */
export async function checkAppendable(path: string): Promise<void> {
  const found = await stat(path).catch((error: NodeJS.ErrnoException) => error);
  if (!(found instanceof Error)) {
    if (found.isDirectory()) throw new Error(`${path} is a directory, not a file to append to`);
    const fifo = fifoProblem(path, found);
    if (fifo) throw new Error(fifo);
    return;
  }
  if (found.code !== "ENOTDIR") return;
  // The nearest that exists on its way is what is no directory.
  for (let above = dirname(path); dirname(above) !== above; above = dirname(above)) {
    const info = await stat(above).catch(() => undefined);
    if (info) throw new Error(`${path} cannot be made: ${above} is a file, not a directory`);
  }
}
