/**
 * The host's side of SinkContext.leadership: terms begin once this replica is the store's writer (not merely when it
 * wins the Lease), so that a sink delivers only what its own term's log holds.
 */
import type { Leadership } from "../sdk/contract.ts";

export class Terms implements Leadership {
  private current: AbortController | undefined;
  private begun = Promise.withResolvers<void>();

  get leading(): boolean {
    return this.current !== undefined;
  }

  begin(): void {
    if (this.current) return;
    this.current = new AbortController();
    this.begun.resolve();
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
      const aborted = Promise.withResolvers<void>();
      const onAbort = () => aborted.resolve();
      signal.addEventListener("abort", onAbort, { once: true });
      await Promise.race([this.begun.promise, aborted.promise]);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
