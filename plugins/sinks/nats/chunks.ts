/**
 * Packs envelopes (already JSON) into replay chunks that each fit the server's
 * max_payload, as protocol/replay.ts defines them. Built by concatenation: the
 * envelopes are serialized once, and sizes are counted in UTF-8 bytes, which is what
 * the server limits.
 */
import type { ResetReason } from "../../../protocol/replay.ts";

/**
 * The most bytes a chunk carries when the server allows more, unless one envelope needs more alone. A chunk is a
 * string, then bytes, then a frame for each requester, each as large as the chunk: ten resets of `all` at 150,000 pods
 * (bench/snapshots.ts) added +275–286 MiB at their peak with chunks of 1 MiB (the server's default max_payload),
 * +206–222 MiB with chunks of 64–256 KiB, +129–176 MiB with 64 KiB and two resets read at once (replay.ts). Replays
 * ran as fast (bench/replay.ts, 1,000,000 updates: 159,400 updates/s against 157,900 with chunks of 1 MiB).
 */
export const CHUNK_BYTES = 64 << 10;
/** Room kept for the final chunk's `],"last":true,"through":<version>}`. */
const TAIL_RESERVE = 64;
/** The longest head a chunk can have: the longest reset marker and a seq of ten digits. */
const LONGEST_HEAD = (epoch: string) =>
  `{"epoch":${JSON.stringify(epoch)},"seq":9999999999,"reset":"behind-retention","updates":[`;

/**
 * The largest envelope, in UTF-8 bytes, that a chunk can carry alone under `maxPayload`. One bound for replies and
 * live messages (nats/publisher.ts): an update that went out live comes back in replays and resets, and one that
 * cannot come back is skipped live too, so that every consumer holds the same objects.
 */
export function largestEnvelope(epoch: string, maxPayload: number): number {
  return maxPayload - Buffer.byteLength(LONGEST_HEAD(epoch)) - 1 - TAIL_RESERVE;
}

export class ChunkWriter {
  private parts: string[] = [];
  private partBytes = 0;
  private oversized: number[] = [];
  private seq = 0;
  private reset: ResetReason | undefined;
  /** Bytes of the current chunk without its envelopes (fixedBytes), kept: every add asks for it. */
  private fixed: number | undefined;
  private readonly largest: number;
  /** What a chunk of several envelopes stays within. */
  private readonly chunkBytes: number;

  constructor(
    private readonly epoch: string,
    /** The server's max_payload: no chunk passes it. */
    private readonly maxBytes: number,
    /** `last`: the reply's final chunk. */
    private readonly send: (chunk: string, last: boolean) => Promise<void>,
  ) {
    this.largest = largestEnvelope(epoch, maxBytes);
    this.chunkBytes = Math.min(maxBytes, CHUNK_BYTES);
  }

  /** Starts the reply with a reset marker (only before anything is sent). */
  markReset(reason: ResetReason): void {
    if (this.seq > 0) throw new Error("a reset marker goes on the first chunk");
    this.reset = reason;
    this.fixed = undefined;
  }

  /**
   * Adds an envelope to the chunk, or sends the chunk first when it is full. Returns a promise only then: an await
   * per envelope of a replay cost more than packing it.
   */
  add(envelopeJson: string, version: number): Promise<void> | undefined {
    const bytes = Buffer.byteLength(envelopeJson);
    const room = this.parts.length === 0 ? this.maxBytes : this.chunkBytes;
    if (bytes <= this.largest && this.size() + 1 + bytes <= room) {
      this.push(envelopeJson, bytes);
      return undefined;
    }
    return this.addAfterFlush(envelopeJson, bytes, version);
  }

  private async addAfterFlush(envelopeJson: string, bytes: number, version: number): Promise<void> {
    if (bytes <= this.largest) {
      await this.flush();
      return this.push(envelopeJson, bytes);
    }
    if (this.size() + String(version).length + 16 > this.maxBytes) await this.flush();
    this.oversized.push(version);
    this.fixed = undefined;
  }

  private push(envelopeJson: string, bytes: number): void {
    this.parts.push(envelopeJson);
    this.partBytes += bytes;
  }

  /** Sends what is left as the final chunk: the requester holds the stream up to `through`. */
  finish(through: number): Promise<void> {
    return this.flush(`,"last":true,"through":${through}`, true);
  }

  /** Ends the reply with an error (after whatever was sent). */
  fail(message: string): Promise<void> {
    this.parts = [];
    this.partBytes = 0;
    // Failed before its first chunk, a reset ends as every other reply does, with the README's error chunk: no marker,
    // which would have the requester drop its state for a reply that carries none (it learns why from the next one).
    if (this.seq === 0) this.reset = undefined;
    return this.flush(`,"error":${JSON.stringify(message)},"last":true`, true);
  }

  private head(seq = this.seq): string {
    const reset = this.reset && seq === 0 ? `,"reset":"${this.reset}"` : "";
    return `{"epoch":${JSON.stringify(this.epoch)},"seq":${seq}${reset},"updates":[`;
  }

  private oversizedJson(): string {
    return this.oversized.length > 0 ? `,"oversized":[${this.oversized.join(",")}]` : "";
  }

  /** Bytes of a chunk without envelopes. */
  private fixedBytes(): number {
    this.fixed ??= Buffer.byteLength(this.head()) + 1 + this.oversizedJson().length + TAIL_RESERVE;
    return this.fixed;
  }

  /** Bytes of the chunk as it stands, with room for its tail. */
  private size(): number {
    return this.fixedBytes() + this.partBytes + Math.max(0, this.parts.length - 1);
  }

  private async flush(tail = "", last = false): Promise<void> {
    const chunk = `${this.head()}${this.parts.join(",")}]${this.oversizedJson()}${tail}}`;
    this.parts = [];
    this.partBytes = 0;
    this.oversized = [];
    this.seq++;
    this.fixed = undefined;
    await this.send(chunk, last);
  }
}
