/**
 * Turns among the snapshot reads of one log. A snapshot holds one of the store's few read transactions (four for
 * libSQL) while its reader takes the pages, at the reader's pace: each group of readers (HTTP clients, NATS resets)
 * gets a number of turns of its own, so that no group takes every transaction from the others and the core.
 */
import type { CommittedLog } from "./contract.ts";

interface Turns {
  reading: number;
  waiting: (() => void)[];
}

const turnsByLog = new WeakMap<CommittedLog, Map<string, Turns>>();

/**
 * Waits until fewer than `limit` snapshots of this log are read by `group`; the function returned ends the turn.
 * Throws the signal's reason once it aborts while waiting (a client gone, a sink stopping), out of the line.
 */
export async function snapshotTurn(
  log: CommittedLog,
  group: string,
  limit: number,
  signal?: AbortSignal,
): Promise<() => void> {
  const groups = turnsByLog.get(log) ?? new Map<string, Turns>();
  turnsByLog.set(log, groups);
  const state = groups.get(group) ?? { reading: 0, waiting: [] };
  groups.set(group, state);
  signal?.throwIfAborted();
  if (state.reading >= limit) {
    await new Promise<void>((resolve, reject) => {
      const leave = () => {
        state.waiting.splice(state.waiting.indexOf(take), 1);
        reject(signal?.reason);
      };
      const take = () => {
        signal?.removeEventListener("abort", leave);
        resolve();
      };
      state.waiting.push(take);
      signal?.addEventListener("abort", leave, { once: true });
    });
  } else state.reading++;
  return () => {
    // The turn passes straight to the next in line, which `reading` then still counts.
    const next = state.waiting.shift();
    if (next) next();
    else state.reading--;
  };
}
