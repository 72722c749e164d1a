/**
 * The chunks of a stream's replay replies, applied to its cache as they come (a reset's staged until its end), and
 * what the last reply said of itself: whether it was a reset, and whether it left versions out.
 */
import type { ReplayChunk } from "../protocol/replay.ts";
import type { StreamCache } from "./cache.ts";
import type { ReplayWindow } from "./nats-replay-window.ts";

/** A replay cut as the callbacks' output backlogged: asked again, from the position reached, once it drained. */
export class Paused extends Error {}

export class ReplayChunks {
  /**
   * A replay left versions out (too large for any message: not published live either). What they did is unknown
   * here (an oversized DELETED leaves its object behind), so the stream's state is asked for next: it leaves out
   * the objects too large to send, as every consumer's does.
   */
  leftOut = false;
  /** The last reply began with a reset (its chunk 0 said so): the stream's state, whatever `from` was. */
  wasReset = false;

  private readonly cache: StreamCache;
  private readonly window: ReplayWindow;
  private readonly paused: () => Promise<void> | undefined;

  constructor(cache: StreamCache, window: ReplayWindow, paused: () => Promise<void> | undefined) {
    this.cache = cache;
    this.window = window;
    this.paused = paused;
  }

  take(chunk: ReplayChunk, bytes: number): void {
    const { cache } = this;
    // A reset's chunks are staged, printed at its end: only a replay's are handed on as they come.
    if (!cache.resetting && this.window.cuts(this.paused() !== undefined, bytes)) throw new Paused();
    if (chunk.seq === 0) this.wasReset = chunk.reset !== undefined;
    if (chunk.seq === 0 && chunk.reset) cache.beginReset(chunk.reset);
    if (chunk.oversized?.length) {
      this.leftOut = true;
      cache.report(
        new Error(`versions ${chunk.oversized.join(", ")} exceed the server's max_payload and were left out`),
      );
    }
    for (const envelope of chunk.updates) {
      if (cache.resetting) cache.stage(envelope);
      else if (!cache.isDuplicate(envelope)) cache.apply(envelope);
    }
    if (!chunk.last) return;
    if (cache.resetting) cache.completeReset(chunk.epoch, chunk.through!);
    else cache.advance(chunk.epoch, chunk.through!);
  }
}
