/** The config file's text, read from whatever its path names (a pipe too: `--config <(…)`), up to a bound. */
import { open } from "node:fs/promises";

/**
 * The most a config file may hold: what a ConfigMap, where a config is mounted from, holds at most. A config is a few
 * KiB; a path that names a database, a log or a device (/dev/zero) by mistake is refused at the bound, not read whole
 * into memory (4.8 GB in 20 s for /dev/zero) for a parser to refuse.
 */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

/** The text of `path`, or the error of its read; ConfigTooLarge past CONFIG_FILE_MAX_BYTES. */
export async function readConfigText(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const { buffer, bytesRead } = await handle.read({ buffer: Buffer.allocUnsafe(64 * 1024) });
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size > CONFIG_FILE_MAX_BYTES) throw new ConfigTooLarge(path);
      chunks.push(buffer.subarray(0, bytesRead));
    }
    // As Bun.file's text(): a byte-order mark is no part of the text.
    return new TextDecoder().decode(Buffer.concat(chunks));
  } finally {
    await handle.close();
  }
}

export class ConfigTooLarge extends Error {
  constructor(readonly path: string) {
    super(`${path} holds more than 1 MiB: no config is that large`);
    this.name = "ConfigTooLarge";
  }
}
