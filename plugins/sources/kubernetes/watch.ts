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
import { INITIAL_EVENTS_END, parseLines, type ParsedEvent } from "./events.ts";
import { owned, ParsedInOrder, type ParseThreads } from "./parse-threads.ts";
import { statusError } from "../../../kube/status.ts";
import { unlessStopped, type Requester } from "./request.ts";
import { BookmarkCadence } from "./inactivity.ts";
import { apiVersionOf, type ResourceType } from "./resources.ts";
import { resumable, shownResourceVersion } from "../../../sdk/resource-version.ts";
import type { SourceMetrics } from "./telemetry.ts";
import { yieldToEventLoop } from "../../../sdk/priority.ts";
import { timerDelay } from "../../../protocol/retry.ts";

/** The server answered a streaming list with a plain watch: it ignores `sendInitialEvents`. */
export class StreamingListIgnored extends Error {
  constructor(detail: string) {
    super(`the API server ignored sendInitialEvents: ${detail}`);
    this.name = "StreamingListIgnored";
  }
}

/**
 * The API server sent an object of another kind than the resource's: a custom resource whose CRD was re-created with
 * another kind while no watch was open (or a proxy that mixes resources up). Retrying the same watch would get the
 * same object again, for good: what the resource's kind is now is discovery's to tell (follow.ts).
 */
export class KindChanged extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KindChanged";
  }
}

/**
 * How long applying a run of events holds the event loop before /healthz, readers and the commits' replies get a turn:
 * a parse thread hands over up to 4 MB of lines at once, thousands of small objects.
 */
const APPLY_SLICE_MS = 5;
/**
 * How long a resumed watch stays open without an ERROR before its resume point counts as still served: kube-apiserver
 * answers one it no longer has (410 Gone) with an ERROR event right after the headers, and the relist that follows
 * is the resource's sync. Any event or bookmark shows it sooner.
 */
export const RESUME_SETTLE_MS = 500;
/**
 * A watch still open this long past its `timeoutSeconds` is ended here and opened again where it was: kube-apiserver
 * ends each on time, and one that does not (a proxy that drops the parameter, a server that drips a byte at a time
 * to keep the inactivity timeout from firing) would otherwise hold the resource on one connection for good.
 */
const OVERDUE_FACTOR = 1.25;
const OVERDUE_GRACE_MS = 2_000;

export interface WatchOptions {
  /** Path and query of the watch request. */
  path: string;
  type: ResourceType;
  key: string;
  /** A streaming list: the request has no resourceVersion and asks for the initial events. */
  initial: boolean;
  timeoutSeconds: number;
  deps: {
    changes: ChangeSink;
    requester: Requester;
    metrics: SourceMetrics;
    /** Where lines are parsed when the core takes prepared changes; on this thread without. */
    parseThreads?: ParseThreads;
  };
  signal: AbortSignal;
  /** The resourceVersion to resume from moved (an event or a bookmark after the initial state). */
  onResourceVersion(resourceVersion: string): void;
  /**
   * A resumed watch is served from its resume point (an event or bookmark came, or RESUME_SETTLE_MS without an
   * ERROR), or a streaming list delivered its initial state.
   */
  onSynced(): void;
  /** An event or bookmark came with a resourceVersion no API server writes (resource-version.ts): not resumed from. */
  onUnusableResourceVersion(resourceVersion: unknown): void;
  /** An event of a type no API server writes today was skipped (`eventType` as events.ts cut it). */
  onUnknownEvent(eventType: string): void;
}

export interface WatchResult {
  /** At least one event or bookmark arrived. */
  progressed: boolean;
  elapsedMs: number;
  /** The server kept it open past its timeoutSeconds, and it was ended here (OVERDUE_FACTOR). */
  overdue: boolean;
}

export async function consumeWatch(options: WatchOptions): Promise<WatchResult> {
  const { type, key, deps } = options;
  const { changes, metrics } = deps;
  const lineKind = { kind: type.kind, apiVersion: apiVersionOf(type) };
  const started = performance.now();
  const splitter = new LineSplitter();
  const decoder = new TextDecoder();
  const counts = new Map<string, number>();
  const cadence = new BookmarkCadence();
  // Ends the request early when the events of lines already read fail (parse threads apply them after the read).
  const request = new AbortController();
  const stop = () => request.abort(options.signal.reason);
  options.signal.addEventListener("abort", stop, { once: true });
  const prepared = deps.parseThreads ? changes.prepared : undefined;
  const threaded = prepared
    ? new ParsedInOrder(deps.parseThreads!, lineKind, applyEvents, (error) => request.abort(error))
    : undefined;
  let relist: Relist | undefined;
  let initialPending = options.initial;
  let progressed = false;
  /** While a resumed watch has not shown yet that the server still has its resume point. */
  let unconfirmed: Timer | undefined;
  let overdue = false;
  let lifetime: Timer | undefined;
  /** When the headers came: a server that held them back until the watch ended said nothing of streaming lists. */
  let openedAt: number | undefined;

  /** Past its initial state (the list's own time), a watch ends OVERDUE_FACTOR past its timeout from its start. */
  function capLifetime(): void {
    const capMs = options.timeoutSeconds * 1000 * OVERDUE_FACTOR + OVERDUE_GRACE_MS;
    lifetime = setTimeout(
      () => {
        overdue = true;
        request.abort(
          new Error(`the API server kept the watch open past its timeoutSeconds=${options.timeoutSeconds}`),
        );
      },
      timerDelay(capMs - (performance.now() - started)),
    );
  }

  function confirmResumed(): void {
    if (unconfirmed === undefined) return;
    clearTimeout(unconfirmed);
    unconfirmed = undefined;
    options.onSynced();
  }

  function handle(event: ParsedEvent): void | Promise<void> {
    if (event.type === "invalid")
      throw event.otherKind === undefined ? new Error(event.message) : new KindChanged(event.message);
    if (event.type === "unknown") return options.onUnknownEvent(event.eventType);
    counts.set(event.type, (counts.get(event.type) ?? 0) + 1);
    switch (event.type) {
      case "BOOKMARK":
        return bookmark(event.object);
      case "ERROR":
        throw statusError(event.status, 500);
      default:
        return change(event);
    }
  }

  function change(event: Extract<ParsedEvent, { type: ChangeType }>): void | Promise<void> {
    // A streaming list sends only ADDED before its initial-events-end bookmark.
    if (initialPending && event.type !== "ADDED")
      throw new StreamingListIgnored(`${event.type} event before the initial-events-end bookmark`);
    progressed = true;
    let pending: void | Promise<void>;
    let resourceVersion: string | undefined;
    if (event.change) {
      pending = prepared!.apply(key, event.type, event.change);
      if (!("rejected" in event.change)) resourceVersion = event.change.resourceVersion;
    } else {
      pending = changes.apply(key, event.type, event.object);
      resourceVersion = event.object.metadata?.resourceVersion;
    }
    if (!initialPending) {
      if (resumable(resourceVersion)) options.onResourceVersion(resourceVersion);
      else if (resourceVersion) options.onUnusableResourceVersion(resourceVersion);
      confirmResumed();
    }
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
    confirmResumed();
    if (!resumable(resourceVersion)) return options.onUnusableResourceVersion(resourceVersion);
    options.onResourceVersion(resourceVersion);
    return changes.bookmark(key, resourceVersion);
  }

  async function endInitialState(resourceVersion: string) {
    // Nothing to watch from: the list is given up, and tried again after the backoff.
    if (!resumable(resourceVersion))
      throw new Error(
        `the streaming list of ${type.resource} ended with a resourceVersion no API server writes: ` +
          shownResourceVersion(resourceVersion),
      );
    const open = relist!;
    relist = undefined;
    initialPending = false;
    await unlessStopped(open.end(resourceVersion), options.signal);
    options.onResourceVersion(resourceVersion);
    options.onSynced();
    capLifetime();
  }

  /**
   * Applies events in order, synchronously until the core pushes back (most need no await at all) or the run has held
   * the event loop for APPLY_SLICE_MS.
   */
  function applyEvents(events: ParsedEvent[], from = 0): void | Promise<void> {
    const started = performance.now();
    for (let i = from; i < events.length; i++) {
      let pending = handle(events[i]!);
      if (!pending && i % 32 === 31 && performance.now() - started >= APPLY_SLICE_MS) pending = yieldToEventLoop();
      if (pending) return unlessStopped(pending, options.signal).then(() => applyEvents(events, i + 1));
    }
    flushCounts();
  }

  /** Lines read: parsed and applied here, or handed to the parse threads. */
  function take(parts: Uint8Array[]): void | Promise<void> {
    if (threaded) return threaded.push(parts);
    return applyEvents(parseLines(parts, decoder, lineKind));
  }

  function flushCounts() {
    for (const [eventType, n] of counts) metrics.events.inc({ resource: type.resource, type: eventType }, n);
    counts.clear();
  }

  // From the request on: a server that holds back the headers holds the watch too (a streaming list's, until they
  // come).
  capLifetime();
  try {
    try {
      await deps.requester.stream({ verb: "watch", resource: type.resource, path: options.path }, request.signal, {
        cadence,
        onOpen() {
          openedAt = performance.now();
          if (!options.initial) {
            unconfirmed = setTimeout(confirmResumed, RESUME_SETTLE_MS);
            return;
          }
          // The initial state takes the list's own time: capped again once it ends.
          clearTimeout(lifetime);
          metrics.relists.inc({ resource: type.resource });
          relist = changes.relist(key, type.kind);
        },
        onChunk: (chunk) => take(splitter.push(threaded ? owned(chunk) : chunk)),
      });
      const pending = take(splitter.rest());
      if (pending) await unlessStopped(pending, options.signal);
    } catch (error) {
      // What it delivered until then is applied below; the rest of a line cut short is the next watch's.
      if (!overdue || options.signal.aborted) throw error;
    } finally {
      // What was read is applied (or failed) before the watch ends, whatever ended it.
      await threaded?.finish().catch((error: unknown) => {
        if (!options.signal.aborted) throw error;
      });
    }
    const elapsedMs = performance.now() - started;
    // A streaming list unanswered past its bound: asked again as any watch is.
    if (initialPending && overdue && openedAt === undefined) return { progressed, elapsedMs, overdue };
    if (initialPending) {
      // A server that honours sendInitialEvents sends the bookmark before anything else
      // can end the watch; one that ignores it answers at once and keeps a plain watch open until timeoutSeconds.
      // One that answered only as the timeout ended the watch (stalled, or the way to it) is retried as it was.
      if (openedAt !== undefined && performance.now() - openedAt >= options.timeoutSeconds * 900)
        throw new StreamingListIgnored("the watch timed out without an initial-events-end bookmark");
      throw new Error("the streaming list ended before its initial-events-end bookmark");
    }
    return { progressed, elapsedMs, overdue };
  } finally {
    clearTimeout(unconfirmed);
    clearTimeout(lifetime);
    options.signal.removeEventListener("abort", stop);
    flushCounts();
    relist?.abort();
  }
}
