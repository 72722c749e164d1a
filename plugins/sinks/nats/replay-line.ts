/**
 * Which waiting replay request is answered next (replay.ts answers it). An answer holds one of `concurrency` slots
 * while it is sent. A reset (an answer that reads the stream's state) also holds one of the log's turns to read it
 * (sdk/snapshot-turns.ts). A reset waits for its turn here, in line, holding no slot: the requests behind it that
 * read no state (gap-fills, a few updates from a known position) are answered meanwhile, and do not wait behind
 * resets that are only waiting themselves. A free slot goes to the request that has waited longest among those that
 * can start: any request that reads no state, or the first reset once a turn is held for it. A request let in as
 * one that reads no state that finds, at its first read, retention past its position comes back in line as a reset.
 */
import type { ResetReason } from "../../../protocol/replay.ts";
import type { Pending } from "./requests.ts";

/** Requests waiting for a slot or a turn; past this, a requester is told to come back. */
const MAX_WAITING = 10_000;

interface Waiting {
  pending: Pending;
  /** Its place in the order of arrival. */
  arrival: number;
}

export interface ReplayLineOptions {
  concurrency: number;
  /** Why an answer to `pending` started now would read the stream's state; undefined when it would not. */
  resetOf(pending: Pending): ResetReason | undefined;
  /** A turn to read the state, once one is free (the function ends it); rejects once the sink stops. */
  turn(): Promise<() => void>;
  /**
   * Answers `pending`, with the stream's state for resetOf's `reset`: the slot, and a reset's turn, are held until the
   * promise settles. Resolves false when it sent nothing, its first read having found retention past its position
   * since resetOf looked: it comes back in line, in its place among the resets, to read the state in a turn.
   */
  answer(pending: Pending, reset: ResetReason | undefined): Promise<boolean>;
  /** A request that came back in line after close(): to be told as those close() returned are. */
  closedOut(pending: Pending): void;
}

export class ReplayLine {
  /** Requests whose answers read no state, in order of arrival. */
  private plain: Waiting[] = [];
  /** Resets, in order of arrival: each needs a turn. */
  private resets: Waiting[] = [];
  private arrivals = 0;
  private answering = 0;
  /** A turn taken for the first reset in line, held until a slot is free for it. */
  private spareTurn: (() => void) | undefined;
  private askingTurn = false;
  private closed = false;

  constructor(private readonly options: ReplayLineOptions) {}

  /** Answers `pending` in its turn; false when too many requests wait already (its requester comes back later). */
  admit(pending: Pending): boolean {
    const queue = this.options.resetOf(pending) ? this.resets : this.plain;
    queue.push({ pending, arrival: this.arrivals++ });
    this.pump();
    if (this.plain.length + this.resets.length <= MAX_WAITING) return true;
    // Over the limit, it did not start, and is still the last of its queue. Counted after pump(), the line turns away
    // no request that can start at once (with a slot free while resets wait for a turn).
    queue.pop();
    this.mindTurn();
    return false;
  }

  /** Takes the waiting requests that `alike` picks: those that one answer serves together. */
  take(alike: (pending: Pending) => boolean): Pending[] {
    const taken: Pending[] = [];
    const kept = (entry: Waiting) => {
      if (!alike(entry.pending)) return true;
      taken.push(entry.pending);
      return false;
    };
    this.resets = this.resets.filter(kept);
    this.plain = this.plain.filter(kept);
    this.mindTurn();
    return taken;
  }

  /** Starts no more answers; returns the requests that wait (each to be told), and gives back a turn held for them. */
  close(): Pending[] {
    this.closed = true;
    const waiting = [...this.plain, ...this.resets].sort((a, b) => a.arrival - b.arrival);
    this.plain = [];
    this.resets = [];
    this.mindTurn();
    return waiting.map((entry) => entry.pending);
  }

  private pump(): void {
    while (this.answering < this.options.concurrency) {
      const next = this.next();
      if (!next) break;
      this.answering++;
      void this.options
        .answer(next.pending, next.reset)
        .then((answered) => {
          if (!answered) this.backAmongResets(next);
        })
        .finally(() => {
          next.endTurn?.();
          this.answering--;
          this.pump();
        });
    }
    this.mindTurn();
  }

  /** Puts `entry` among the resets in its place of arrival: it has waited since then. */
  private backAmongResets(entry: Waiting): void {
    if (this.closed) {
      this.options.closedOut(entry.pending);
      return;
    }
    const behind = this.resets.findIndex((other) => other.arrival > entry.arrival);
    this.resets.splice(behind < 0 ? this.resets.length : behind, 0, entry);
  }

  /** The request to answer next, with the turn of a reset, or none that can start now. */
  private next(): (Waiting & { reset?: ResetReason; endTurn?: () => void }) | undefined {
    for (;;) {
      const plain = this.plain[0];
      const spare = this.spareTurn;
      const reset = this.resets[0];
      if (spare && reset && !(plain && plain.arrival < reset.arrival)) {
        this.resets.shift();
        const reason = this.options.resetOf(reset.pending);
        // No reset now (the log reached its position, say): the turn stays for the next in line.
        if (!reason) return reset;
        this.spareTurn = undefined;
        return { ...reset, reset: reason, endTurn: spare };
      }
      if (!plain) return undefined;
      this.plain.shift();
      if (!this.options.resetOf(plain.pending)) return plain;
      // Retention passed its position while it waited: it reads the state now.
      this.backAmongResets(plain);
    }
  }

  /** Keeps a turn coming for the first reset in line while one waits, and holds none once none waits. */
  private mindTurn(): void {
    if (this.resets.length === 0) {
      this.spareTurn?.();
      this.spareTurn = undefined;
      return;
    }
    if (this.spareTurn || this.askingTurn || this.closed) return;
    this.askingTurn = true;
    this.options.turn().then(
      (endTurn) => {
        this.askingTurn = false;
        this.spareTurn = endTurn;
        this.pump();
      },
      // The sink stops: close() has told those waiting.
      () => (this.askingTurn = false),
    );
  }
}
