/**
 * Splits a byte stream into runs of complete lines without decoding anything: a newline
 * byte never occurs inside a UTF-8 sequence, so lines are cut on bytes, and each run can
 * be decoded whole, here or on a parse thread (parse-threads.ts).
 */

const NEWLINE = 0x0a;

/**
 * The longest watch line taken: one object, which kube-apiserver keeps under etcd's 1.5 MiB request limit, so a real
 * one is a few MiB at most; past this, a line that never ends (a hostile or broken server) would be held until the
 * process runs out of memory.
 */
export const MAX_LINE_BYTES = 128 << 20;

/**
 * More of one answer than is taken (a watch line, a LIST page): a hostile or broken server's, held it would grow
 * memory until the process is killed. Its own class, so that its retries are counted as `oversized`.
 */
export class OversizedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OversizedError";
  }
}

export class LineSplitter {
  /** Bytes after the last newline seen, in arrival order. */
  private carry: Uint8Array[] = [];
  private carried = 0;

  /**
   * The bytes of the complete lines in `chunk` with what was carried over, newline-separated and without the last
   * newline, as parts to be read one after the other; none while no newline came. Throws once a line runs past
   * MAX_LINE_BYTES without its end.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      if (chunk.length > 0) this.keep(chunk.slice());
      return [];
    }
    const parts = [...this.carry, chunk.subarray(0, last)];
    this.carry = [];
    this.carried = 0;
    // A copy (less than a line): the chunk may be transferred to a parse thread, its buffer with it.
    if (last + 1 < chunk.length) this.keep(chunk.slice(last + 1));
    return parts;
  }

  /** What is left after the last newline (a stream may end without one). */
  rest(): Uint8Array[] {
    const parts = this.carry;
    this.carry = [];
    this.carried = 0;
    return parts;
  }

  private keep(part: Uint8Array): void {
    this.carried += part.length;
    if (this.carried > MAX_LINE_BYTES)
      throw new OversizedError(`a watch line ran past ${MAX_LINE_BYTES >> 20} MiB without its end: given up`);
    this.carry.push(part);
  }
}

/**
 * The lines of what LineSplitter.push gave (or of rest(): then one line, possibly empty), each decoded on its own:
 * decoding a whole run at once would allocate it twice more (joined, then as one string), megabytes that are fresh
 * pages each time (README, "Memory in a container").
 */
export function linesOf(parts: Uint8Array[], decoder: TextDecoder): string[] {
  if (parts.length === 0) return [];
  const lines: string[] = [];
  let started: Uint8Array[] = [];
  for (const part of parts) {
    let start = 0;
    for (let end = part.indexOf(NEWLINE); end >= 0; end = part.indexOf(NEWLINE, start)) {
      lines.push(decodeLine(started, part.subarray(start, end), decoder));
      started = [];
      start = end + 1;
    }
    if (start < part.length) started.push(part.subarray(start));
  }
  lines.push(decodeLine(started, new Uint8Array(0), decoder));
  return lines;
}

/** A line whose bytes began in earlier parts (`started`) and end with `last`. */
function decodeLine(started: Uint8Array[], last: Uint8Array, decoder: TextDecoder): string {
  return decoder.decode(started.length === 0 ? last : Buffer.concat([...started, last]));
}
