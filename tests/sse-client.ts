/**
 * A Server-Sent Events client for tests and benchmarks, over Bun's fetch, parsing with the
 * client library's WHATWG parser (client/sse-parser.ts). Written here rather than taking
 * the `eventsource` package because tests need what an EventSource hides: response status
 * and headers, comment lines (heartbeats), reading slowly or not at all, and reconnecting
 * at a moment the test chooses, while keeping the exact `Last-Event-ID` semantics a
 * browser has.
 */

import { SseParser, type SseEvent } from "../client/sse-parser.ts";

export { SseParser, type SseEvent };

export interface SseConnectOptions {
  /** Sent as `Last-Event-ID`, as an EventSource does when it reconnects. */
  lastEventId?: string;
  headers?: Record<string, string>;
  tls?: { ca?: string; rejectUnauthorized?: boolean };
  /** Do not read the body until `resume()` (a subscriber that cannot keep up). */
  paused?: boolean;
}

/** One connection. Events queue up until the test takes them. */
export class SseConnection {
  readonly events: SseEvent[] = [];
  comments = 0;
  /** Resolves when the response body ended or failed. */
  readonly ended: Promise<void>;
  private readonly parser: SseParser;
  private readonly abort: AbortController;
  private taken = 0;
  private readonly waiters = new Set<() => void>();
  private hasEnded = false;
  private unpause: (() => void) | undefined;

  private constructor(
    readonly response: Response,
    options: SseConnectOptions,
    abort: AbortController,
  ) {
    this.abort = abort;
    this.parser = new SseParser(
      (event) => {
        this.events.push(event);
        this.notify();
      },
      () => {
        this.comments++;
        this.notify();
      },
    );
    const paused = options.paused ? new Promise<void>((resolve) => (this.unpause = resolve)) : Promise.resolve();
    this.ended = paused
      .then(() => this.read())
      .finally(() => {
        this.hasEnded = true;
        this.notify();
      });
  }

  static async open(url: string, options: SseConnectOptions = {}): Promise<SseConnection> {
    const abort = new AbortController();
    const headers: Record<string, string> = { accept: "text/event-stream", ...options.headers };
    if (options.lastEventId) headers["last-event-id"] = options.lastEventId;
    const response = await fetch(url, { headers, signal: abort.signal, tls: options.tls });
    return new SseConnection(response, options, abort);
  }

  get status(): number {
    return this.response.status;
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  get isEnded(): boolean {
    return this.hasEnded;
  }

  resume(): void {
    this.unpause?.();
  }

  /** The next event not yet taken; fails after `timeoutMs`, or when the stream ends first. */
  async next(timeoutMs = 5000): Promise<SseEvent> {
    await this.until(() => this.taken < this.events.length || this.hasEnded, timeoutMs, "the next event");
    const event = this.events[this.taken];
    if (!event) throw new Error("stream ended");
    this.taken++;
    return event;
  }

  /** Takes events until one of `type` (included); returns them all. */
  async takeUntil(type: string, timeoutMs = 5000): Promise<SseEvent[]> {
    const taken: SseEvent[] = [];
    for (;;) {
      const event = await this.next(timeoutMs);
      taken.push(event);
      if (event.type === type) return taken;
    }
  }

  /** Waits until `check` holds, re-checked on every event, comment and end. */
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  close(): void {
    this.abort.abort();
    this.unpause?.();
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private async read(): Promise<void> {
    if (!this.response.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.response.body) this.parser.push(decoder.decode(chunk, { stream: true }));
    } catch {
      // Aborted by close() or cut by the server: `ended` resolves either way.
    }
  }
}

/** Parses an event's JSON data. */
export function json<T = Record<string, unknown>>(event: SseEvent): T {
  return JSON.parse(event.data) as T;
}

/** Opens `<baseUrl>/v1/watch` with the given query. */
export function openSse(
  baseUrl: string,
  query: Record<string, string> = {},
  options: SseConnectOptions = {},
): Promise<SseConnection> {
  return SseConnection.open(`${baseUrl}/v1/watch?${new URLSearchParams(query)}`, options);
}

/** The versions of update events (those with an `<epoch>:<version>` id), in order. */
export function versionsOf(events: SseEvent[]): number[] {
  return events
    .filter((e) => e.type === "ADDED" || e.type === "MODIFIED" || e.type === "DELETED")
    .map((e) => json<{ version: number }>(e).version);
}
