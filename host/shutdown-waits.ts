/**
 * What a shutdown is waiting for, for the line it logs when it runs out of shutdownTimeout: with nothing left
 * uncommitted, the operator still needs to know what did not finish. A sink's cursor save cut short means that sink
 * delivers again, after a restart, what it delivered since the cursor the store holds (at least once); the store's
 * close cut short loses nothing committed.
 */
import type { SinkContext } from "../sdk/contract.ts";

type Cursor = SinkContext["cursor"];

/** A sink's cursor as the host sees it: what the store holds, as far as it knows, and a save in flight. */
interface CursorState {
  held?: number;
  saving?: number;
}

export class ShutdownWaits {
  private step = "the start of the shutdown";
  private sinksStep = false;
  private readonly stoppingSinks = new Set<string>();
  private readonly cursors = new Map<string, CursorState>();

  /** Sink `sink`'s cursor, each load and save noted: the save a shutdown waits for can be named. */
  cursor(sink: string, cursor: Cursor): Cursor {
    const state: CursorState = {};
    this.cursors.set(sink, state);
    return {
      load: async () => {
        const version = await cursor.load();
        state.held = version;
        return version;
      },
      save: async (version) => {
        state.saving = version;
        try {
          await cursor.save(version);
          state.held = version;
        } finally {
          state.saving = undefined;
        }
      },
    };
  }

  /** The shutdown goes on with `step` (`the store's close`). */
  at(step: string): void {
    this.step = step;
    this.sinksStep = false;
  }

  /** The shutdown stops the sinks: `stop` each, each named while it runs. */
  async stopSinks(sinks: { name: string; stop(): Promise<void> }[]): Promise<void> {
    this.sinksStep = true;
    await Promise.all(
      sinks.map(async ({ name, stop }) => {
        this.stoppingSinks.add(name);
        try {
          await stop();
        } finally {
          this.stoppingSinks.delete(name);
        }
      }),
    );
  }

  /** What the shutdown waits for now, each in words an operator acts on. */
  describe(): string[] {
    if (!this.sinksStep) return [this.step];
    return [...this.stoppingSinks].sort().map((sink) => {
      const { held, saving } = this.cursors.get(sink) ?? {};
      if (saving === undefined) return `the stop of sink ${sink}`;
      const again =
        held === undefined
          ? "the store holds none: after a restart it starts over as a new sink does"
          : saving > held
            ? `the store holds ${held}: after a restart it delivers versions ${held + 1}-${saving} again`
            : `the store holds ${held}: nothing is delivered again`;
      return `the cursor save of sink ${sink} (version ${saving}; ${again})`;
    });
  }
}
