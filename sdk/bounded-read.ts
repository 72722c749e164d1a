/**
 * A file read up to a bound, once for the config (host/config-file.ts) and the credential files a config names
 * (credential-file.ts), on this thread or not: the loop yields where each read goes and is given back what it read.
 * Each caller opens the file its own way: a pipe blocks the config's read, never a credential file's.
 */
import { readSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";

/**
 * The most a config or a credential file may hold: what a ConfigMap or a Secret, where they are mounted from, holds
 * at most (etcd's request limit). A config, a certificate, a key, a token or a kubeconfig is a few KiB, a whole CA
 * bundle a few hundred; a path that names a database, a log, a disk image or a device (/dev/zero) by mistake is
 * refused at the bound, not read whole into memory (4.8 GB in 20 s for /dev/zero) for a parser to refuse.
 */
export const MOUNTED_FILE_MAX_BYTES = 1024 * 1024;
/** MOUNTED_FILE_MAX_BYTES in the words of the errors that name it. */
export const MOUNTED_FILE_MAX = "1 MiB";

/** Where one read goes: `length` bytes of room in `buffer` from `offset`. */
interface ReadInto {
  buffer: Buffer;
  offset: number;
  length: number;
}

/**
 * The reads of a file, read into at `expected` bytes and one more, to see its end; one that holds more is read on in a
 * larger buffer, until a read returns 0 (the bytes returned) or more than the bound has come (`tooLarge` thrown).
 */
function* boundedReads(expected: number, tooLarge: () => Error): Generator<ReadInto, Buffer, number> {
  let buffer = Buffer.allocUnsafe(Math.min(expected, MOUNTED_FILE_MAX_BYTES) + 1);
  for (let filled = 0; ; ) {
    if (filled === buffer.length) {
      if (filled > MOUNTED_FILE_MAX_BYTES) throw tooLarge();
      const larger = Buffer.allocUnsafe(Math.min(buffer.length * 2, MOUNTED_FILE_MAX_BYTES + 1));
      buffer.copy(larger, 0, 0, filled);
      buffer = larger;
    }
    const bytesRead = yield { buffer, offset: filled, length: buffer.length - filled };
    if (bytesRead === 0) return buffer.subarray(0, filled);
    filled += bytesRead;
  }
}

/** What the open file `fd` holds from where it stands, at most MOUNTED_FILE_MAX_BYTES; `tooLarge` thrown past them. */
export function readBoundedSync(fd: number, expected: number, tooLarge: () => Error): Buffer {
  const reads = boundedReads(expected, tooLarge);
  let step = reads.next();
  while (!step.done) step = reads.next(readSync(fd, step.value.buffer, step.value.offset, step.value.length, null));
  return step.value;
}

/** As readBoundedSync, off this thread. */
export async function readBounded(handle: FileHandle, expected: number, tooLarge: () => Error): Promise<Buffer> {
  const reads = boundedReads(expected, tooLarge);
  let step = reads.next();
  while (!step.done) {
    const { buffer, offset, length } = step.value;
    step = reads.next((await handle.read(buffer, offset, length, null)).bytesRead);
  }
  return step.value;
}
