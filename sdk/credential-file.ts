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
import { closeSync, constants, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { MOUNTED_FILE_MAX, MOUNTED_FILE_MAX_BYTES, readBounded, readBoundedSync } from "./bounded-read.ts";
import { tildeProblem } from "./tilde.ts";

/** O_NONBLOCK: opening a FIFO does not wait for a writer. O_NOCTTY: a terminal is never made the controlling one. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * What a credential file holds rather than its path: a line break or another control character (a kubeconfig, a
 * `.creds` file), a mapping (a kubeconfig as JSON on one line), a PEM block, an nkey seed (`SU…`), a JWT. A Secret's
 * value given to the variable meant for its file's path (`KUBECONFIG` holding the kubeconfig, as a CI system's
 * variable of the wrong type does) was read as a path, and the failed read quoted it: in the log, in `--check`'s
 * output and, for a kubeconfig, on the open /readyz.
 */
const FILE_CONTENT = /\p{Cc}|^\s*\{|-----BEGIN |^S[A-Z][A-Z2-7]{50,}$|^eyJ[\w-]*\.[\w-]+\./u;

/** Base64 on one line (`base64 -w0`, standard or URL-safe), as long as the shortest credential file or longer. */
const BASE64 = /^[\w+/-]{16,}={0,2}$/;
/** Text: no control character but a tab or a line break, and no byte that is not UTF-8 (decoded as U+FFFD). */
const TEXT = /^[^\p{Cc}\uFFFD]*$/u;

/**
 * True when `path` holds what a credential file holds rather than a path (FILE_CONTENT), or the base64 of it (a CI
 * system's variable of a Secret encoded once more, `base64 -w0 config`): never to be quoted. A path read as base64
 * decodes to bytes that are not text, a kubeconfig's base64 to text with line breaks.
 */
export function holdsFileContent(path: string): boolean {
  if (FILE_CONTENT.test(path)) return true;
  if (!BASE64.test(path)) return false;
  const decoded = Buffer.from(path, "base64").toString("utf8");
  return TEXT.test(decoded.replace(/[\t\n\r]/g, "")) && FILE_CONTENT.test(decoded);
}

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
      const size = refuseUnusable(key, path, await handle.stat());
      return await readBounded(handle, size, () => tooLarge(key, path));
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
      return readBoundedSync(fd, refuseUnusable(key, path, fstatSync(fd)), () => tooLarge(key, path));
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
  if (info.size > MOUNTED_FILE_MAX_BYTES) throw tooLarge(key, path);
  return info.size;
}

const tooLarge = (key: string, path: string) =>
  new CredentialFileError(key, path, `larger than ${MOUNTED_FILE_MAX}, the most a credential file may hold`);

export function kindOf(info: Stats): string {
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
  // A path written from `~` (`credsFile: ~/nats.creds`) is not found because nothing expanded it: ENOENT alone hid why.
  const tilde = code === "ENOENT" ? tildeProblem(path, { reads: true }) : undefined;
  return new CredentialFileError(key, path, tilde ? `${code}; the path ${tilde}` : code, code);
}
