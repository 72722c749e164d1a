/** The file a `jsonl` sink's path names, as the config is checked (plugins/sinks/jsonl.ts). */
import { readlinkSync, realpathSync } from "node:fs";
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
 * Throws what makes `path` no file to append to wherever it is checked: a directory, or a file where a directory on
 * its way belongs. Nothing made yet is no error: the first write makes the file and its directories.
 */
export async function checkAppendable(path: string): Promise<void> {
  const found = await stat(path).catch((error: NodeJS.ErrnoException) => error);
  if (!(found instanceof Error)) {
    if (found.isDirectory()) throw new Error(`${path} is a directory, not a file to append to`);
    return;
  }
  if (found.code !== "ENOTDIR") return;
  // The nearest that exists on its way is what is no directory.
  for (let above = dirname(path); dirname(above) !== above; above = dirname(above)) {
    const info = await stat(above).catch(() => undefined);
    if (info) throw new Error(`${path} cannot be made: ${above} is a file, not a directory`);
  }
}
