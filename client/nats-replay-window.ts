/**
 * How far a stream's replays reach while the callbacks' output backs up (subscribeNats's `paused`). Asked up to the
 * head, each replay that a pause cut had kubemeta send the whole backlog again, to be dropped but for a pipe's worth:
 * a 23 MB backlog read slowly through `tail` was sent some 200 times over. Meanwhile a replay asks a window of versions
 * instead, and one under way goes on through a pause for a bounded number of bytes, held by the output.
 */
import { MAX_VERSION } from "../protocol/position.ts";

/** Versions a window holds at least, and at most. */
const MIN_WINDOW = 16;
const MAX_WINDOW = 1 << 20;
/**
 * Bytes of a window's chunks still handed on after a pause began, before it is cut: its end held in memory costs less
 * than asking it again.
 */
const PAUSED_BYTES = 1 << 20;

export class ReplayWindow {
  /** Versions a replay asks at most; undefined: up to the head (the output has kept up). */
  private versions: number | undefined;
  /** Bytes of the replay under way taken since a pause began; undefined while none did. */
  private pausedBytes: number | undefined;
  private start = 0;

  /** Messages were dropped while paused: the replay that brings them back is the first window. */
  backedUp(): void {
    this.versions ??= MIN_WINDOW;
  }

  /**
   * A replay begins from `position` (a `reset`, asked from nothing, is staged whole, never cut: no window); returns
   * the `to` to ask, `to` itself unless a window is narrower.
   */
  begin(position: number, to: number | undefined, reset: boolean): number | undefined {
    this.pausedBytes = undefined;
    this.start = position;
    if (reset || this.versions === undefined) return to;
    const end = Math.min(position + this.versions, MAX_VERSION);
    return to === undefined || end < to ? end : to;
  }

  /** Whether a replay's chunk of `bytes`, coming while `paused` (or after a pause began), cuts it. */
  cuts(paused: boolean, bytes: number): boolean {
    if (this.pausedBytes === undefined && !paused) return false;
    this.pausedBytes = (this.pausedBytes ?? 0) + bytes;
    return this.versions === undefined || this.pausedBytes > PAUSED_BYTES;
  }

  /** The replay was cut at `position`: the next window is what was taken of it. */
  cut(position: number): void {
    this.versions = Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, position - this.start));
  }

  /**
   * A window (`asked` by begin()) was answered up to `position`: whether another follows. One that ended below its
   * bound reached the head; one taken whole with no pause is followed by a wider one.
   */
  next(position: number, asked: number): boolean {
    if (position < asked) {
      this.versions = undefined;
      return false;
    }
    if (this.pausedBytes === undefined) this.versions = Math.min(MAX_WINDOW, 2 * this.versions!);
    return true;
  }
}
