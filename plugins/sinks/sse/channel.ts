/**
 * The response body of one SSE subscriber: a byte stream with a bounded buffer. Bun
 * pulls from it only as fast as the socket drains (once the kernel's buffers are full),
 * so `hasRoom()` tells whether this subscriber keeps up, and `waitForRoom()` lets a
 * catch-up go at the subscriber's pace without holding more than `bufferBytes`.
 */
import { timerDelay } from "../../../protocol/retry.ts";

const encoder = new TextEncoder();

export class SseChannel {
  readonly body: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private drained: PromiseWithResolvers<void> | undefined;
  private closed = false;

  /** `onGone` runs once when the client goes away (or the stream is closed). */
  constructor(
    bufferBytes: number,
    private readonly onGone: () => void,
  ) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.wakeWriter(),
        cancel: () => this.finish(),
      },
      { highWaterMark: bufferBytes, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while what is buffered is under the bound. */
  hasRoom(): boolean {
    return !this.closed && (this.controller.desiredSize ?? 0) > 0;
  }

  /** Appends to the buffer, whatever its fill (callers check `hasRoom` or `waitForRoom` first). */
  write(chunk: string | Uint8Array): void {
    if (this.closed || chunk.length === 0) return;
    this.controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
  }

  /**
   * Resolves true when the buffer is under its bound again, or the channel is closed; false if `stallMs` pass
   * first with the subscriber taking nothing.
   */
  async waitForRoom(stallMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timerDelay(stallMs));
    });
    try {
      while (!this.closed && !this.hasRoom()) {
        this.drained ??= Promise.withResolvers<void>();
        if (!(await Promise.race([this.drained.promise.then(() => true), stalled]))) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the response after what is buffered has been sent. */
  close(): void {
    if (this.closed) return;
    this.finish();
    this.controller.close();
  }

  private wakeWriter(): void {
    const drained = this.drained;
    this.drained = undefined;
    drained?.resolve();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.wakeWriter();
    this.onGone();
  }
}
