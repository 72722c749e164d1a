/**
 * One watch line as the watch loop (watch.ts) takes it, parsed on the main thread or on a
 * parse thread (parse-threads.ts) alike: a change with its object (or, prepared off the
 * main thread, what the core makes of it), a BOOKMARK or ERROR with its small object, an event of a type no
 * API server writes today (skipped), or a line that is not a watch event, which ends the watch as an error.
 */
import type { PreparedChange } from "../../../sdk/prepared.ts";
import type { ChangeType } from "../../../protocol/envelope.ts";
import type { KubeObject } from "../../../sdk/model.ts";
import { linesOf } from "./lines.ts";
import { parseSkimmed } from "./skim.ts";
import { statusOf, type KubeStatus } from "../../../kube/status.ts";

export type ParsedEvent =
  | { type: ChangeType; object: KubeObject; change?: undefined }
  | { type: ChangeType; change: PreparedChange; object?: undefined }
  /** Only what the watch reads of them (bookmarkOf, statusOf): the rest would cross from a parse thread for nothing. */
  | { type: "BOOKMARK"; object: KubeObject }
  | { type: "ERROR"; status: KubeStatus }
  /** An event whose `type` is a string but none of EVENT_TYPES (`eventType`, cut short: it is the server's). */
  | { type: "unknown"; eventType: string }
  /** `otherKind`: the line's object is of another kind than the watch's (see KindChanged, watch.ts). */
  | { type: "invalid"; message: string; otherKind?: string };

/** What a line's object is missing as a list item would (watch events of some servers too). */
export interface LineKind {
  kind: string;
  apiVersion: string;
}

/** The types of watch event, each counted in `kubemeta_source_events_total` (telemetry.ts). */
export const EVENT_TYPES = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] as const;
const CHANGE_TYPES = new Set<string>(["ADDED", "MODIFIED", "DELETED"]);
/** The annotation of the BOOKMARK that ends a streaming list's initial state. */
export const INITIAL_EVENTS_END = "k8s.io/initial-events-end";

/**
 * The event of a non-blank line. A change's object gets `kind` and `apiVersion` if it lacks them, then goes through
 * `prepare` when given. Throws what JSON.parse throws for a line that is not JSON.
 */
function parseWatchLine(line: string, lineKind: LineKind, prepare?: (raw: KubeObject) => PreparedChange): ParsedEvent {
  // Without metadata.managedFields, which the core would drop anyway (skim.ts says why).
  const event = parseSkimmed(line) as { type?: unknown; object?: KubeObject } | null;
  const type = event?.type;
  const object = event?.object ?? {};
  if (typeof type === "string" && CHANGE_TYPES.has(type)) {
    // Another resource's object (a broken proxy's): not this watch's to deliver. A kind that is no name at all is the
    // core's to refuse, counted with the other malformed objects.
    if (typeof object.kind === "string" && object.kind !== "" && object.kind !== lineKind.kind)
      return {
        type: "invalid",
        message: `an object of kind ${object.kind} on a watch of ${lineKind.kind}`,
        otherKind: object.kind,
      };
    object.kind ??= lineKind.kind;
    object.apiVersion ??= lineKind.apiVersion;
    const changeType = type as ChangeType;
    return prepare ? { type: changeType, change: prepare(object) } : { type: changeType, object };
  }
  if (type === "BOOKMARK") return { type, object: bookmarkOf(object) };
  if (type === "ERROR") return { type, status: statusOf(object) };
  // A type of a later API version, or a proxy's: skipped. Ending the watch would get the same event again from the
  // same resume point, at each watch, for good.
  if (typeof type === "string") return { type: "unknown", eventType: type.slice(0, 100) };
  return { type: "invalid", message: `unexpected watch event type ${JSON.stringify(type)}` };
}

/**
 * A BOOKMARK's resourceVersion and initial-events-end annotation, all the watch reads of it. Its whole object, of any
 * size and depth from a hostile server, would be cloned from a parse thread: one nested deeper than the clone goes
 * killed the thread, again at each re-watch that got the same line.
 */
function bookmarkOf(object: KubeObject): KubeObject {
  const metadata = object.metadata;
  const resourceVersion = metadata?.resourceVersion;
  const end = (metadata?.annotations as Record<string, unknown> | undefined)?.[INITIAL_EVENTS_END];
  return {
    metadata: {
      ...(typeof resourceVersion === "string" ? { resourceVersion } : {}),
      ...(typeof end === "string" ? { annotations: { [INITIAL_EVENTS_END]: end } } : {}),
    },
  };
}

/** Blank lines and lone spaces are keep-alives (Bun.serve needs a body byte to send headers). */
function isKeepAlive(line: string): boolean {
  return line.charCodeAt(0) !== 0x7b && line.trim() === "";
}

/**
 * The events of a run of lines (LineSplitter), keep-alives left out. A line that is not JSON ends the run with an
 * `invalid` event: the events before it are still handled, as they would be one by one.
 */
export function parseLines(
  parts: Uint8Array[],
  decoder: TextDecoder,
  lineKind: LineKind,
  prepare?: (raw: KubeObject) => PreparedChange,
): ParsedEvent[] {
  const events: ParsedEvent[] = [];
  for (const line of linesOf(parts, decoder)) {
    if (isKeepAlive(line)) continue;
    try {
      events.push(parseWatchLine(line, lineKind, prepare));
    } catch (error) {
      events.push({ type: "invalid", message: error instanceof Error ? error.message : String(error) });
      break;
    }
  }
  return events;
}
