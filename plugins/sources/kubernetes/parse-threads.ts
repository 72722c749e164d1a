/**
 * Parse threads: watch lines are decoded, parsed and prepared (slimmed, serialized, digested, routed: the core's
 * per-object work, sdk/prepared.ts PreparedChanges) on Bun Workers, so that the main thread only applies what they
 * hand back. JSON.parse of the initial state alone is seconds of one core at 150,000 pods (bench/RESULTS.md).
 *
 * Each watch keeps its order: its runs of lines go to the threads in turn, at most `threads + 3` of them parsed or
 * waiting to be applied at once, and their events are applied one run after the other. While all of those are out,
 * new lines gather into the next run (up to BATCH_BYTES, then the stream waits): few messages when the stream is
 * fast, none held back when it is slow.
 */
import type { PreparerSpec } from "../../../sdk/prepared.ts";
import type { LineKind, ParsedEvent } from "./events.ts";
import type { ParseReply, ParseRequest } from "./parse-worker.ts";
import { startThread, type Thread } from "../../../sdk/thread.ts";

/** While every run is out, lines gather into the next one up to this size; then the stream waits (backpressure). */
const BATCH_BYTES = 4 << 20;

/**
 * The buffers the parts view, to be transferred rather than copied: a cloned view copies the whole buffer it views.
 * Every part views a buffer of its own (ParsedInOrder.push says how), which only the parse thread uses from then on.
 */
function buffersOf(parts: Uint8Array[]): ArrayBuffer[] {
  return [...new Set(parts.map((part) => part.buffer as ArrayBuffer))];
}

/** `chunk` when it is all of its buffer (a response body's chunks are), else a copy: either may be transferred. */
export function owned(chunk: Uint8Array): Uint8Array {
  return chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk : chunk.slice();
}

/** One Worker and its requests; a crashed one fails them all and is replaced on the next request. */
function startParseThread(preparer: PreparerSpec, name: string): Thread {
  const thread = startThread<ParseReply>(new URL("./parse-worker.ts", import.meta.url).href, {
    name,
    describe: "a parse thread",
    outcome(reply) {
      if ("error" in reply) throw new Error(reply.error);
      return reply.events;
    },
  });
  thread.post({ type: "init", preparer } satisfies ParseRequest);
  return thread;
}

export class ParseThreads {
  private readonly threads: Thread[] = [];
  private turn = 0;

  constructor(
    readonly count: number,
    private readonly preparer: PreparerSpec,
  ) {}

  parse(lineKind: LineKind, parts: Uint8Array[]): Promise<ParsedEvent[]> {
    const index = this.turn++ % this.count;
    let thread = this.threads[index];
    if (!thread || thread.failure) {
      thread?.terminate();
      thread = this.threads[index] = startParseThread(this.preparer, `parse-${index + 1}`);
    }
    const request: Omit<Extract<ParseRequest, { type: "parse" }>, "id"> = { type: "parse", lineKind, parts };
    return thread.request<ParsedEvent[]>(request, { transfer: buffersOf(parts) });
  }

  close(): void {
    for (const thread of this.threads) thread.terminate();
    this.threads.length = 0;
  }
}

/**
 * One watch's lines through the threads, applied in order by `apply`. A failure (a parse thread crashed, `apply`
 * threw: an ERROR event, a bad line) stops everything after it; `failed` hears of it at once, finish() throws it.
 */
export class ParsedInOrder {
  private applied: Promise<void> = Promise.resolve();
  private out = 0;
  private run: Uint8Array[] = [];
  private runBytes = 0;
  private slot = Promise.withResolvers<void>();
  private failure: { error: unknown } | undefined;
  /**
   * Runs out at once: one per thread, one being applied, two parsed and waiting their turn. Measured against one
   * waiting (bench/ingest.ts): 16,000–17,300 events/s against 15,400–15,500.
   */
  private readonly maxOut: number;

  constructor(
    private readonly threads: ParseThreads,
    private readonly lineKind: LineKind,
    private readonly apply: (events: ParsedEvent[]) => void | Promise<void>,
    private readonly failed: (error: unknown) => void,
  ) {
    this.maxOut = threads.count + 3;
  }

  /**
   * Takes complete lines (LineSplitter.push); returns a promise when the stream should wait. The buffers they view go
   * to a parse thread: they must be of no use here any more, and viewed by nothing else (a response body's chunks
   * are each a buffer of its own, see owned(), and LineSplitter keeps copies of what it carries over).
   */
  push(parts: Uint8Array[]): void | Promise<void> {
    if (this.failure) throw this.failure.error;
    if (parts.length === 0) return;
    if (this.run.length > 0) this.run.push(new Uint8Array([0x0a]));
    for (const part of parts) {
      this.run.push(part);
      this.runBytes += part.length;
    }
    if (this.out < this.maxOut) return this.post();
    if (this.runBytes >= BATCH_BYTES) return this.slot.promise;
  }

  /** Resolves once every line pushed is applied; throws the failure that stopped them. */
  async finish(): Promise<void> {
    while (this.run.length > 0 || this.out > 0) {
      if (this.failure) break;
      if (this.run.length > 0 && this.out < this.maxOut) this.post();
      else await this.slot.promise;
    }
    if (this.failure) throw this.failure.error;
  }

  private post(): void {
    const parsing = this.threads.parse(this.lineKind, this.run);
    // Its failure is taken up when the runs before it are applied; until then it must not count as unhandled.
    parsing.catch(() => {});
    this.run = [];
    this.runBytes = 0;
    this.out++;
    this.applied = this.applied
      .then(() => parsing)
      .then((events) => this.apply(events))
      .then(() => {
        this.out--;
        if (this.run.length > 0) this.post();
        this.freeSlot();
      });
    this.applied.catch((error: unknown) => {
      this.failure ??= { error };
      this.freeSlot();
      this.failed(error);
    });
  }

  private freeSlot(): void {
    this.slot.resolve();
    this.slot = Promise.withResolvers<void>();
  }
}
