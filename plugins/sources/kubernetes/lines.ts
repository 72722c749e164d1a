/**
 * Splits a byte stream into lines without decoding partial characters: a newline byte
 * never occurs inside a UTF-8 sequence, so lines are cut on bytes and each run of
 * complete lines is decoded at once.
 */

const NEWLINE = 0x0a;

export class LineSplitter {
  private readonly decoder = new TextDecoder();
  /** Bytes after the last newline seen, in arrival order. */
  private carry: Uint8Array[] = [];

  /** The complete lines in `chunk` (with what was carried over), without their newline. */
  push(chunk: Uint8Array): string[] {
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      if (chunk.length > 0) this.carry.push(chunk);
      return [];
    }
    const head = chunk.subarray(0, last);
    const text =
      this.carry.length === 0 ? this.decoder.decode(head) : this.decoder.decode(Buffer.concat([...this.carry, head]));
    this.carry = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
    return text.split("\n");
  }

  /** What is left after the last newline (a stream may end without one). */
  rest(): string {
    const text = this.decoder.decode(Buffer.concat(this.carry));
    this.carry = [];
    return text;
  }
}
