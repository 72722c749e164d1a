/**
 * `appendLines`: lines appended to a file as a sink should append them (the `jsonl` sink does, and
 * examples/sink-plugin): whole lines or none, through a full disk and through logrotate's rotations, in a file that is
 * its user's alone.
 *
 * @example
 * ```ts
 * import { appendLines } from "kubemeta/sdk";
 *
 * async deliver(envelopes) {
 *   await appendLines(config.file, envelopes.map((e) => `${e.kind} ${e.name}\n`).join(""));
 * }
 * ```
 */
import type { Stats } from "node:fs";
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

export interface AppendLinesOptions {
  /**
   * Why what the path names, once opened, takes no lines (thrown as an Error), or undefined to write. Default: a FIFO
   * (a named pipe) is refused, since each call opens and closes it: its reader sees its end after the first, and what
   * later calls write with no reader is dropped.
   */
  refuse?: (found: Stats) => string | undefined;
}

const refuseFifo = (path: string) => (found: Stats) =>
  found.isFIFO() ? `${path} is a FIFO (a named pipe), not a file to append to` : undefined;

const NEWLINE = 0x0a;

/**
 * Opens the file to append to (and to read its last byte), making its directory first if it is missing. A sink's lines
 * hold what `http.tokens` guard, as the store does: what is made here (the file, again after each rotation, and its
 * directories) is kubemeta's user's alone, whatever the umask; a file or directory that exists keeps its mode.
 */
async function openToAppend(path: string): Promise<FileHandle> {
  try {
    return await open(path, "a+", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return open(path, "a+", 0o600);
  }
}

/**
 * Whether the file is empty or ends a line. A rotation (logrotate's `copytruncate`) may truncate it between its size
 * and the read of its last byte: that read then finds nothing, and is made again at the new size, rather than taking
 * "no byte" for a line left unfinished and starting the rotated file with an empty line.
 */
async function endsLine(file: FileHandle): Promise<boolean> {
  let { size } = await file.stat();
  while (size > 0) {
    const { bytesRead, buffer } = await file.read(Buffer.alloc(1), 0, 1, size - 1);
    if (bytesRead === 1) return buffer[0] === NEWLINE;
    const now = (await file.stat()).size;
    // Not shrunk: a file that reads nothing where its size says (a device's, /sys's) has no line to end.
    if (now >= size) return true;
    size = now;
  }
  return true;
}

/**
 * Writes `bytes` at the file's end, or throws with none of them left in it: a write cut short (a full disk) is cut back
 * to where it began, the file's size less what was written, since a rotation may have truncated the file before it.
 */
async function appendWhole(file: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  try {
    while (written < bytes.length) written += (await file.write(bytes, written)).bytesWritten;
  } catch (error) {
    if (written > 0) await cutBack(file, written).catch(() => {});
    throw error;
  }
}

/**
 * Cuts off the last `written` bytes. A rotation that truncated the file after them took them already; one that
 * truncates it between its size and the cut makes the cut lengthen it, with NUL bytes, which no line holds: those are
 * cut off too, so that the rotated file is left empty rather than starting with them.
 */
async function cutBack(file: FileHandle, written: number): Promise<void> {
  const began = (await file.stat()).size - written;
  if (began < 0) return;
  await file.truncate(began);
  if (began === 0) return;
  const { bytesRead, buffer } = await file.read(Buffer.alloc(1), 0, 1, began - 1);
  if (bytesRead === 1 && buffer[0] === 0) await file.truncate(0);
}

/**
 * Appends `text` (lines, each ending in a newline) to the file at `path`, whole or not at all: a write that fails part
 * way (a full disk) is cut back to where it began, so that its retry starts a line of its own rather than finishing a
 * torn one, and a file that does not end a line (a crash in the middle of a write) gets its newline first. The file is
 * opened for each call, so a rotation asks nothing of the caller: a file moved away or deleted is made again, one
 * truncated (`copytruncate`) is written from its start. What is made (the file, its directories) is `0600` (`0700`)
 * whatever the umask; a file or directory that exists keeps its mode. Throws what failed, to be retried.
 */
export async function appendLines(path: string, text: string, options: AppendLinesOptions = {}): Promise<void> {
  const file = await openToAppend(path);
  try {
    const refused = (options.refuse ?? refuseFifo(path))(await file.stat());
    if (refused) throw new Error(refused);
    await appendWhole(file, Buffer.from((await endsLine(file)) ? text : `\n${text}`));
  } finally {
    await file.close();
  }
}
