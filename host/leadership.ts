/**
 * The host's side of SinkContext.leadership: terms begin once this replica is the store's writer (not merely when it
 * wins the Lease), so that a sink delivers only what its own term's log holds.
 */
import type { Leadership } from "../sdk/contract.ts";
import { until } from "../protocol/retry.ts";

export class Terms implements Leadership {
  private current: AbortController | undefined;
  private begun = Promise.withResolvers<void>();
  /** Whether the Lease of the term is still surely held (Elector.holds); a term without a Lease always is. */
  private leaseHeld: () => boolean = () => true;

  begin(leaseHeld: () => boolean = () => true): void {
    if (this.current) return;
    this.current = new AbortController();
    this.leaseHeld = leaseHeld;
    this.begun.resolve();
  }

  holds(): boolean {
    return this.current !== undefined && this.leaseHeld();
  }

  end(): void {
    if (!this.current) return;
    this.current.abort();
    this.current = undefined;
    this.begun = Promise.withResolvers<void>();
  }

  async acquire(signal: AbortSignal): Promise<AbortSignal> {
    for (;;) {
      signal.throwIfAborted();
      if (this.current) return this.current.signal;
      await until(this.begun.promise, Infinity, signal);
    }
  }
}
