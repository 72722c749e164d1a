/** The config file's text, read from whatever its path names (a pipe too: `--config <(…)`), up to a bound. */
import { open } from "node:fs/promises";
import { MOUNTED_FILE_MAX, readBounded } from "../sdk/bounded-read.ts";

/** What a config's first read takes: a config is a few KiB. */
const FIRST_READ_BYTES = 64 * 1024;

/**
 * The text of `path`, or the error of its read; ConfigTooLarge past MOUNTED_FILE_MAX_BYTES. Opened and read as any
 * file, so that a pipe is waited on for its writer and its bytes (credential-file.ts never waits).
 */
export async function readConfigText(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    // As Bun.file's text(): a byte-order mark is no part of the text.
    return new TextDecoder().decode(await readBounded(handle, FIRST_READ_BYTES, () => new ConfigTooLarge(path)));
  } finally {
    await handle.close();
  }
}

export class ConfigTooLarge extends Error {
  constructor(readonly path: string) {
    super(`${path} holds more than ${MOUNTED_FILE_MAX}: no config is that large`);
    this.name = "ConfigTooLarge";
  }
}
