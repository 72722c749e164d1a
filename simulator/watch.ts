/**
 * One open watch: a chunked `application/json` response carrying one
 * `{"type":…,"object":…}` per line, as kube-apiserver writes them. Everything it sends
 * (initial events, live events, bookmarks) goes through one ordered queue, so a
 * BOOKMARK never overtakes an event it would let the client skip.
 */
import type { ServerResponse } from "node:http";
import { CHUNK_BYTES, drained, kubeHeaders } from "./http.ts";
import { apiVersionOf, type ResourceType } from "./resource-types.ts";
import type { Matcher } from "./selectors.ts";
import type { Status } from "./status.ts";
import { eventLine } from "./serialize.ts";
import { timerDelay } from "../protocol/retry.ts";
import type { Entry, StoredEvent, Subscriber } from "./table.ts";

export interface WatchFilter {
  namespace: string | null;
  labels?: Matcher;
  fields?: Matcher;
}

export interface WatchOptions {
  type: ResourceType;
  filter: WatchFilter;
  allowBookmarks: boolean;
  bookmarkIntervalMs: number;
  timeoutMs: number;
}

/** What the server lends a watch: the global state it must consult. */
export interface WatchHost {
  stalled(): boolean;
  resourceVersion(): number;
  closed(watch: WatchConnection): void;
}

/** Objects to send as ADDED before live events; `endBookmarkRv` set for a streaming list (KEP-3157). */
export interface InitialEvents {
  entries: Entry[];
  endBookmarkRv?: number;
}

function bookmarkLine(type: ResourceType, rv: number, initialEventsEnd: boolean): string {
  if (type.custom) {
    // An empty unstructured object of the kind: sorted keys, no body.
    const annotations = initialEventsEnd ? `"annotations":{"k8s.io/initial-events-end":"true"},` : "";
    return (
      `{"type":"BOOKMARK","object":{"apiVersion":"${apiVersionOf(type)}","kind":"${type.kind}",` +
      `"metadata":{${annotations}"resourceVersion":"${rv}"}}}\n`
    );
  }
  const annotations = initialEventsEnd ? `,"annotations":{"k8s.io/initial-events-end":"true"}` : "";
  return (
    `{"type":"BOOKMARK","object":{"kind":"${type.kind}","apiVersion":"${apiVersionOf(type)}",` +
    `"metadata":{"resourceVersion":"${rv}"${annotations}},${type.bookmarkBody}}}\n`
  );
}

/** An ERROR event carrying a Status, the way the real server reports a failed watch after the 200. */
export function errorEventLine(status: Status): string {
  return eventLine("ERROR", JSON.stringify(status));
}

export function matches(filter: WatchFilter, entry: Entry): boolean {
  if (filter.namespace !== null && entry.namespace !== filter.namespace) return false;
  if (filter.labels && !filter.labels(entry.labels)) return false;
  return !filter.fields || filter.fields(entry.fields);
}

export class WatchConnection implements Subscriber {
  private readonly queue: string[] = [];
  private initial: InitialEvents | undefined;
  private initialIndex = 0;
  private headersSent = false;
  private waitingForDrain = false;
  private closed = false;
  private readonly timers: Array<ReturnType<typeof setTimeout>> = [];
  private readonly filtered: boolean;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: WatchOptions,
    private readonly host: WatchHost,
  ) {
    const { filter } = options;
    this.filtered = filter.labels !== undefined || filter.fields !== undefined;
    res.on("close", () => this.finish());
    // kube-apiserver keeps a watch open for any timeoutSeconds; a timer past 2^31-1 ms would end it at once.
    this.timers.push(setTimeout(() => this.end(), timerDelay(options.timeoutMs)));
    if (options.allowBookmarks) {
      this.timers.push(setInterval(() => this.bookmark(), options.bookmarkIntervalMs));
    }
  }

  /** Starts sending: `initial` objects first (if any), then `replay`ed history, then live events. */
  start(initial: InitialEvents | undefined, replay: StoredEvent[]): void {
    this.initial = initial;
    for (const event of replay) this.offer(event);
    this.pump();
  }

  offer(event: StoredEvent): void {
    const { filter } = this.options;
    const now = matches(filter, event.entry);
    if (event.type === "MODIFIED" && this.filtered) {
      // A filtered watch sees an object enter or leave its selection as ADDED/DELETED.
      const before = matches(filter, event.previous!);
      if (before !== now) {
        this.queue.push(eventLine(now ? "ADDED" : "DELETED", event.entry.json));
        this.pump();
        return;
      }
    }
    if (!now) return;
    event.line ??= eventLine(event.type, event.entry.json);
    this.queue.push(event.line);
    this.pump();
  }

  get type(): ResourceType {
    return this.options.type;
  }

  /** Called when the server stops stalling watches. */
  resume(): void {
    this.pump();
  }

  /** Ends the response cleanly, as a server-side timeout does. Unsent events are dropped: the client resumes. */
  end(): void {
    if (this.closed) return;
    this.flushHeaders();
    this.res.end();
    this.finish();
  }

  /** Cuts the connection without a terminating chunk, like a crashed server or a dropped link. */
  drop(): void {
    this.res.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.queue.length = 0;
    this.initial = undefined;
    this.host.closed(this);
  }

  private bookmark(): void {
    if (this.initial) return; // the real server sends no bookmark before the initial events are out
    this.queue.push(bookmarkLine(this.options.type, this.host.resourceVersion(), false));
    this.pump();
  }

  private flushHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.res.writeHead(200, kubeHeaders());
    // node:http holds the headers until the first body write; a quiet watch must not
    // leave the client waiting for them (kube-apiserver flushes right after WriteHeader).
    this.res.flushHeaders();
  }

  private nextChunk(): string {
    const parts: string[] = [];
    let size = 0;
    const initial = this.initial;
    if (initial) {
      const { entries } = initial;
      while (this.initialIndex < entries.length && size < CHUNK_BYTES) {
        const entry = entries[this.initialIndex++]!;
        if (!matches(this.options.filter, entry)) continue;
        const line = eventLine("ADDED", entry.json);
        parts.push(line);
        size += line.length;
      }
      if (this.initialIndex < entries.length) return parts.join("");
      if (initial.endBookmarkRv !== undefined) parts.push(bookmarkLine(this.options.type, initial.endBookmarkRv, true));
      this.initial = undefined;
    }
    let taken = 0;
    while (taken < this.queue.length && size < CHUNK_BYTES) {
      const line = this.queue[taken++]!;
      parts.push(line);
      size += line.length;
    }
    this.queue.splice(0, taken);
    return parts.join("");
  }

  private pump(): void {
    if (this.closed || this.waitingForDrain || this.host.stalled()) return;
    this.flushHeaders();
    for (let chunk = this.nextChunk(); chunk !== ""; chunk = this.nextChunk()) {
      if (!this.res.write(chunk)) {
        this.waitingForDrain = true;
        void drained(this.res).then(() => {
          this.waitingForDrain = false;
          this.pump();
        });
        return;
      }
    }
  }
}
