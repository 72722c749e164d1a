/**
 * One watch request, line by line: ADDED/MODIFIED/DELETED go to the core, BOOKMARKs
 * move the resume point, an ERROR event becomes an ApiError. For a streaming list the
 * same request first carries the initial state, inside a relist that the
 * initial-events-end BOOKMARK closes.
 */
import type { ChangeSink, Relist } from "../../../sdk/contract.ts";
import type { ChangeType } from "../../../protocol/envelope.ts";
import type { KubeObject } from "../../../sdk/model.ts";
import { LineSplitter } from "./lines.ts";
import { parseSkimmed } from "./skim.ts";
import { statusError, type KubeStatus } from "../../../kube/status.ts";
import { BookmarkCadence, unlessStopped, type Requester } from "./request.ts";
import { apiVersionOf, type ResourceType } from "./resources.ts";
import type { SourceMetrics } from "./telemetry.ts";

/** The server answered a streaming list with a plain watch: it ignores `sendInitialEvents`. */
export class StreamingListIgnored extends Error {
  constructor(detail: string) {
    super(`the API server ignored sendInitialEvents: ${detail}`);
    this.name = "StreamingListIgnored";
  }
}

const INITIAL_EVENTS_END = "k8s.io/initial-events-end";
const EVENT_TYPES = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] as const;
type EventType = (typeof EVENT_TYPES)[number];

interface WatchEvent {
  type: EventType;
  object?: KubeObject;
}

export interface WatchOptions {
  /** Path and query of the watch request. */
  path: string;
  type: ResourceType;
  key: string;
  /** A streaming list: the request has no resourceVersion and asks for the initial events. */
  initial: boolean;
  timeoutSeconds: number;
  deps: { changes: ChangeSink; requester: Requester; metrics: SourceMetrics };
  signal: AbortSignal;
  /** The resourceVersion to resume from moved (an event or a bookmark after the initial state). */
  onResourceVersion(resourceVersion: string): void;
  /** The server accepted a resumed watch, or a streaming list delivered its initial state. */
  onSynced(): void;
}

export interface WatchResult {
  /** At least one event or bookmark arrived. */
  progressed: boolean;
  elapsedMs: number;
}

export async function consumeWatch(options: WatchOptions): Promise<WatchResult> {
  const { type, key, deps } = options;
  const { changes, metrics } = deps;
  const apiVersion = apiVersionOf(type);
  const started = performance.now();
  const splitter = new LineSplitter();
  const counts = new Map<EventType, number>();
  const cadence = new BookmarkCadence();
  let relist: Relist | undefined;
  let initialPending = options.initial;
  let progressed = false;

  function handle(line: string): void | Promise<void> {
    // Blank lines and lone spaces are keep-alives (Bun.serve needs a body byte to send headers).
    if (line.charCodeAt(0) !== 0x7b && line.trim() === "") return;
    // Without metadata.managedFields, which the core would drop anyway (skim.ts says why).
    const event = parseSkimmed(line) as WatchEvent;
    const object = event.object ?? {};
    counts.set(event.type, (counts.get(event.type) ?? 0) + 1);
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        return change(event.type, object);
      case "BOOKMARK":
        return bookmark(object);
      case "ERROR":
        throw statusError(object as KubeStatus, 500);
      default:
        throw new Error(`unexpected watch event type ${JSON.stringify(event.type)}`);
    }
  }

  function change(changeType: ChangeType, object: KubeObject): void | Promise<void> {
    // A streaming list sends only ADDED before its initial-events-end bookmark.
    if (initialPending && changeType !== "ADDED")
      throw new StreamingListIgnored(`${changeType} event before the initial-events-end bookmark`);
    object.kind ??= type.kind;
    object.apiVersion ??= apiVersion;
    progressed = true;
    const pending = changes.apply(key, changeType, object);
    const resourceVersion = object.metadata?.resourceVersion;
    if (!initialPending && resourceVersion) options.onResourceVersion(resourceVersion);
    return pending;
  }

  function bookmark(object: KubeObject): void | Promise<void> {
    const metadata = object.metadata;
    const resourceVersion = metadata?.resourceVersion;
    if (!resourceVersion) return;
    progressed = true;
    if (initialPending) {
      const annotations = metadata.annotations as Record<string, string> | undefined;
      if (annotations?.[INITIAL_EVENTS_END] !== "true")
        throw new StreamingListIgnored("BOOKMARK without the initial-events-end annotation");
      return endInitialState(resourceVersion);
    }
    cadence.beat();
    options.onResourceVersion(resourceVersion);
    return changes.bookmark(key, resourceVersion);
  }

  async function endInitialState(resourceVersion: string) {
    const open = relist!;
    relist = undefined;
    initialPending = false;
    await unlessStopped(open.end(resourceVersion), options.signal);
    options.onResourceVersion(resourceVersion);
    options.onSynced();
  }

  function handleLines(lines: string[], from: number): void | Promise<void> {
    for (let i = from; i < lines.length; i++) {
      const pending = handle(lines[i]!);
      // Stay synchronous until the core pushes back: most lines need no await at all.
      if (pending) return unlessStopped(pending, options.signal).then(() => handleLines(lines, i + 1));
    }
  }

  function flushCounts() {
    for (const [eventType, n] of counts) metrics.events.inc({ resource: type.resource, type: eventType }, n);
    counts.clear();
  }

  try {
    await deps.requester.stream({ verb: "watch", resource: type.resource, path: options.path }, options.signal, {
      cadence,
      onOpen() {
        if (!options.initial) return options.onSynced();
        metrics.relists.inc({ resource: type.resource });
        relist = changes.relist(key, type.kind);
      },
      onChunk(chunk) {
        const pending = handleLines(splitter.push(chunk), 0);
        if (!pending) return flushCounts();
        return pending.then(flushCounts);
      },
    });
    const last = splitter.rest();
    const pending = last.trim() ? handle(last) : undefined;
    if (pending) await unlessStopped(pending, options.signal);
    const elapsedMs = performance.now() - started;
    if (initialPending) {
      // A server that honours sendInitialEvents sends the bookmark before anything else
      // can end the watch; one that ignores it keeps a plain watch open until timeoutSeconds.
      if (elapsedMs >= options.timeoutSeconds * 900)
        throw new StreamingListIgnored("the watch timed out without an initial-events-end bookmark");
      throw new Error("the streaming list ended before its initial-events-end bookmark");
    }
    return { progressed, elapsedMs };
  } finally {
    flushCounts();
    relist?.abort();
  }
}
