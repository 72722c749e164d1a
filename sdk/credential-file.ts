/**
 * The credential and certificate files a config names (a NATS seed, `.creds` or TLS file, a kubeconfig and the files
 * it names, the HTTPS listener's certificate and key), read only if they are regular files of a bounded size.
 *
 * A FIFO nobody writes blocks its read for ever, and a device such as /dev/zero reads without end. Through
 * fs/promises or Bun.file, such a read holds one of the two threads of Bun's file pool: two of them (a sink retrying
 * its connection) leave none for any other file read of the process. A synchronous one blocks the event loop itself.
 * So the path is looked at first (through symbolic links: Kubernetes mounts a Secret's keys as links to regular
 * files), then opened without waiting for a writer and looked at again through the open file (what was put there in
 * between is never read), and read up to a limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from "node:fs";
import { open, stat } from "node:fs/promises";

/**
 * The most a credential file may hold. A Secret or a ConfigMap, what these files are mounted from, holds 1 MiB at
 * most (etcd's request limit); a certificate, a key, a token or a kubeconfig is a few KiB, a whole CA bundle a few
 * hundred KiB. A path that names a log or a disk image by mistake is refused rather than read whole into memory.
 */
export const CREDENTIAL_FILE_MAX_BYTES = 1024 * 1024;

/** O_NONBLOCK: opening a FIFO does not wait for a writer. O_NOCTTY: a terminal is never made the controlling one. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** A credential file that cannot be used: the message names the key that names it and its path, never its content. */
export class CredentialFileError extends Error {
  constructor(
    readonly key: string,
    readonly path: string,
    /** What the file is instead (`a FIFO, not a regular file`), or why it cannot be read (`ENOENT`). */
    readonly problem: string,
    /** The error code of a file that cannot be read at all (`ENOENT`, `EACCES`). */
    readonly code?: string,
  ) {
    super(code === undefined ? `${key} ${path} is ${problem}` : `cannot read ${key} ${path}: ${problem}`);
    this.name = "CredentialFileError";
  }
}

/** Reads the file `key` names at `path`; throws CredentialFileError. Never blocks on a FIFO or a device. */
export async function readCredentialFile(key: string, path: string): Promise<Buffer> {
  try {
    refuseUnusable(key, path, await stat(path));
    const handle = await open(path, OPEN_FLAGS);
    try {
      let buffer: Buffer = Buffer.allocUnsafe(refuseUnusable(key, path, await handle.stat()) + 1);
      for (let filled = 0; ; ) {
        buffer = withRoom(key, path, buffer, filled);
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
        if (bytesRead === 0) return buffer.subarray(0, filled);
        filled += bytesRead;
      }
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw credentialFileError(key, path, error);
  }
}

/** As readCredentialFile, on this thread: for what is synchronous (a kubeconfig's load, the config's schema). */
export function readCredentialFileSync(key: string, path: string): Buffer {
  try {
    refuseUnusable(key, path, statSync(path));
    const fd = openSync(path, OPEN_FLAGS);
    try {
      let buffer: Buffer = Buffer.allocUnsafe(refuseUnusable(key, path, fstatSync(fd)) + 1);
      for (let filled = 0; ; ) {
        buffer = withRoom(key, path, buffer, filled);
        const bytesRead = readSync(fd, buffer, filled, buffer.length - filled, null);
        if (bytesRead === 0) return buffer.subarray(0, filled);
        filled += bytesRead;
      }
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw credentialFileError(key, path, error);
  }
}

/** The file's size; throws what it is when it is no regular file, or one larger than the limit. */
function refuseUnusable(key: string, path: string, info: Stats): number {
  if (!info.isFile()) throw new CredentialFileError(key, path, `${kindOf(info)}, not a regular file`);
  if (info.size > CREDENTIAL_FILE_MAX_BYTES) throw tooLarge(key, path);
  return info.size;
}

/**
 * `buffer` with room for the next read: read into at the size the file had when opened and a byte more, to see its
 * end; a file that grew meanwhile is read on in a larger one, until it ends or passes the limit.
 */
function withRoom(key: string, path: string, buffer: Buffer, filled: number): Buffer {
  if (filled < buffer.length) return buffer;
  if (filled > CREDENTIAL_FILE_MAX_BYTES) throw tooLarge(key, path);
  const larger = Buffer.allocUnsafe(Math.min(buffer.length * 2, CREDENTIAL_FILE_MAX_BYTES + 1));
  buffer.copy(larger, 0, 0, filled);
  return larger;
}

const tooLarge = (key: string, path: string) =>
  new CredentialFileError(key, path, "larger than 1 MiB, the most a credential file may hold");

function kindOf(info: Stats): string {
  if (info.isFIFO()) return "a FIFO";
  if (info.isDirectory()) return "a directory";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  return "something else";
}

function credentialFileError(key: string, path: string, error: unknown): CredentialFileError {
  if (error instanceof CredentialFileError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? String(error);
  return new CredentialFileError(key, path, code, code);
}
