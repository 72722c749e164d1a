/**
 * A parse thread of parse-threads.ts: decodes runs of watch lines, parses them (skimmed) and prepares each change
 * with the core's preparer, which it loads once from the module the host named. Requests are answered in order.
 */
import type { PreparedChange, PreparerModule, PreparerSpec } from "../../../sdk/prepared.ts";
import type { KubeObject } from "../../../sdk/model.ts";
import { parseLines, type LineKind, type ParsedEvent } from "./events.ts";
import { yieldCoresToEventLoop } from "../../../sdk/priority.ts";

export type ParseRequest =
  | { type: "init"; preparer: PreparerSpec }
  /** Complete lines, newline-separated, without the last newline (LineSplitter.push). */
  | { type: "parse"; id: number; lineKind: LineKind; parts: Uint8Array[] };

export type ParseReply = { id: number; events: ParsedEvent[] } | { id: number; error: string };

declare const self: Worker;

yieldCoresToEventLoop();

const decoder = new TextDecoder();
let prepared: Promise<(raw: KubeObject) => PreparedChange> | undefined;

/** The prepared change without its slim object: the JSON text carries it, and cloning it too would cost as much. */
function prepareWithoutObject(prepare: (raw: KubeObject) => PreparedChange) {
  return (raw: KubeObject): PreparedChange => {
    const change = prepare(raw);
    if ("rejected" in change) return change;
    const { object: _, ...rest } = change;
    return rest;
  };
}

self.onmessage = (event: MessageEvent<ParseRequest>) => {
  const request = event.data;
  if (request.type === "init") {
    const { module, options } = request.preparer;
    prepared = (import(module) as Promise<PreparerModule>).then((loaded) =>
      prepareWithoutObject(loaded.createPreparer(options)),
    );
    return;
  }
  const { id, lineKind, parts } = request;
  if (!prepared) throw new Error("parse thread: a parse request before init");
  prepared.then(
    (prepare) => self.postMessage({ id, events: parseLines(parts, decoder, lineKind, prepare) } satisfies ParseReply),
    (error: unknown) =>
      self.postMessage({ id, error: `cannot load the core's preparer: ${String(error)}` } satisfies ParseReply),
  );
};
