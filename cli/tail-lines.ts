/**
 * What `kubemeta tail` prints: readable aligned lines, or the envelopes as JSON lines, from the client library's
 * callbacks.
 */
import type { Envelope, InformerHandlers, ResetInfo, SyncedInfo } from "../client/index.ts";
import type { TailOptions } from "./tail-args.ts";

/**
 * What a terminal acts on rather than shows: C0 controls (the newline that ends a line is added after this), DEL and
 * C1 controls (CSI, OSC and the like: some terminals take them as their ESC sequences).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is matched
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * A line as a terminal shows it: each control character as its JSON escape (`\u001b`), so a name from the cluster
 * (a Role's may hold any character but `/` and `%`), or what a server or a NATS publisher sends, cannot clear the
 * screen, set the window's title or forge lines. Within a JSON line the escape is JSON's own: the line parses to the
 * same value.
 */
export function printable(line: string): string {
  return line.replace(CONTROL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Right-aligned versions and fixed type and kind columns keep a scrolling tail readable. */
function columns(version: string, label: string, rest: string): string {
  return `${version.padStart(8)} ${label.padEnd(8)} ${rest}`.trimEnd();
}

function updateLine(envelope: Envelope, note: string, manyStreams: boolean): string {
  const ref = envelope.namespace ? `${envelope.namespace}/${envelope.name}` : envelope.name;
  // A Node's node is itself.
  const node = envelope.node && envelope.kind !== "Node" ? `node=${envelope.node}` : "";
  const stream = manyStreams ? `[${envelope.stream}]` : "";
  const rest = [envelope.kind.padEnd(13), ref.padEnd(40), node, stream, note].filter(Boolean).join("  ");
  return columns(String(envelope.version), envelope.type, rest);
}

function resetLine({ stream, epoch, previousEpoch, reason }: ResetInfo): string {
  const was = previousEpoch && previousEpoch !== epoch ? `  was=${previousEpoch}` : "";
  return columns("-", "RESET", `${stream}  reason=${reason}  epoch=${epoch}${was}`);
}

function syncedLine({ stream, epoch, version }: SyncedInfo): string {
  return columns(String(version), "SYNCED", `${stream}  epoch=${epoch}`);
}

/** The callbacks that print: `out` and `err` take lines without their newline. */
export function printer(
  options: TailOptions,
  out: (line: string) => void,
  err: (line: string) => void,
): InformerHandlers {
  const manyStreams = new Set(options.streams).size > 1;
  const status = options.json ? err : out;
  const print = (envelope: Envelope, note = "") =>
    out(options.json ? JSON.stringify(envelope) : updateLine(envelope, note, manyStreams));
  // Over SSE the server filters; over NATS every update of the stream arrives.
  const { kinds, namespace } = options;
  const wanted = (e: Envelope) =>
    (!kinds || kinds.has(e.kind)) && (namespace === undefined || e.namespace === namespace);
  return {
    onAdd: (e) => wanted(e) && print(e),
    onUpdate(_old, e) {
      if (!wanted(e)) return;
      // An object changed across a reset comes as its snapshot envelope, an ADDED: printed as it is, it would read as
      // new.
      if (e.type === "ADDED") print({ ...e, type: "MODIFIED" }, "(changed at reset)");
      else print(e);
    },
    onDelete(e) {
      if (!wanted(e)) return;
      // An object found gone at a reset comes as the last envelope held: printed as it is, it would read as still
      // there.
      if (e.type === "DELETED") print(e);
      else print({ ...e, type: "DELETED" }, "(gone at reset)");
    },
    onReset: (info) => status(resetLine(info)),
    onSynced: (info) => status(syncedLine(info)),
    onError: (error, stream) => err(`kubemeta tail: ${stream}: ${error.message}`),
  };
}
