/**
 * The test API server's open watches: each started from the current state (a streaming list, or a watch without a
 * resourceVersion) or from the history after a resourceVersion, and stalled, dropped or ended on the tests' demand.
 */
import type { ServerResponse } from "node:http";
import { kubeHeaders, sendStatus } from "./http.ts";
import { parseResourceVersion, type ListOptions } from "./options.ts";
import type { ResourceType } from "./resource-types.ts";
import { tooLargeResourceVersion, watchTooOld, type Status } from "./status.ts";
import type { ObjectStore } from "./store.ts";
import type { StoredEvent } from "./table.ts";
import { errorEventLine, WatchConnection, type InitialEvents, type WatchFilter } from "./watch.ts";

/** kube-apiserver's default watch timeout: --min-request-timeout (1800 s) times a random factor in [1, 2). */
function defaultWatchTimeoutMs(): number {
  return 1_800_000 * (1 + Math.random());
}

/** HTTP 200, one ERROR event, end of stream: how kube-apiserver fails a watch it has accepted. */
export function sendErrorEvent(res: ServerResponse, status: Status): void {
  res.writeHead(200, kubeHeaders());
  res.end(errorEventLine(status));
}

export class Watches {
  /** Each open watch, with what ends its subscription to the store. */
  private readonly open = new Map<WatchConnection, () => void>();
  private stalled = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly bookmarkIntervalMs: number,
  ) {}

  count(): number {
    return this.open.size;
  }

  dropAll(): void {
    for (const watch of [...this.open.keys()]) watch.drop();
  }

  stall(stalled: boolean): void {
    this.stalled = stalled;
    if (!stalled) for (const watch of this.open.keys()) watch.resume();
  }

  /** Ends every watch of `type`, as a deleted CRD's watches end. */
  endAll(type: ResourceType): void {
    for (const watch of [...this.open.keys()]) if (watch.type === type) watch.end();
  }

  start(res: ServerResponse, type: ResourceType, filter: WatchFilter, options: ListOptions): void {
    const requested = parseResourceVersion(options.resourceVersion);
    if (typeof requested === "object") {
      sendStatus(res, requested);
      return;
    }
    const current = this.store.resourceVersion();
    if (requested !== undefined && requested > current) {
      sendErrorEvent(res, tooLargeResourceVersion(requested, current));
      return;
    }
    let initial: InitialEvents | undefined;
    let replay: StoredEvent[] = [];
    const legacyInitialState = options.sendInitialEvents === undefined && (requested === undefined || requested === 0);
    if (options.sendInitialEvents === true || legacyInitialState) {
      // Streaming list (KEP-3157) or a watch without a resourceVersion: the current
      // state as ADDED events; only the streaming list ends it with a marked BOOKMARK.
      const snapshot = this.store.snapshot(type);
      const marked = options.sendInitialEvents === true && options.allowWatchBookmarks;
      initial = { entries: snapshot.entries, endBookmarkRv: marked ? snapshot.rv : undefined };
    } else if (requested !== undefined) {
      const events = this.store.eventsAfter(type, requested);
      if (events === "too-old") {
        sendErrorEvent(res, watchTooOld(requested, this.store.oldestServed(type)));
        return;
      }
      if (events === "too-large") {
        sendErrorEvent(res, tooLargeResourceVersion(requested, current));
        return;
      }
      replay = events;
    }
    const watch = new WatchConnection(
      res,
      {
        type,
        filter,
        allowBookmarks: options.allowWatchBookmarks,
        bookmarkIntervalMs: this.bookmarkIntervalMs,
        timeoutMs: options.timeoutSeconds ? options.timeoutSeconds * 1000 : defaultWatchTimeoutMs(),
      },
      {
        stalled: () => this.stalled,
        resourceVersion: () => this.store.resourceVersion(),
        closed: (closed) => {
          this.open.get(closed)?.();
          this.open.delete(closed);
        },
      },
    );
    this.open.set(watch, this.store.subscribe(type, watch));
    watch.start(initial, replay);
  }
}
