/**
 * The list/watch loop of one resource (its paginated LIST: list.ts). It keeps no objects: each watch line or list
 * item is parsed, handed to the core and dropped. Its only state is the resourceVersion to resume from.
 */
import type { ChangeSink } from "../../../sdk/contract.ts";
import { type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import { Backoff, sleep } from "../../../protocol/retry.ts";
import { ApiError } from "../../../kube/status.ts";
import { errorText } from "../../../protocol/error-text.ts";
import { retryDelay, type Requester } from "./request.ts";
import { collectionPath, selectorParams, type ResourceType, type Scope } from "./resources.ts";
import type { SourceMetrics } from "./telemetry.ts";
import { consumeWatch, KindChanged, StreamingListIgnored, type WatchResult } from "./watch.ts";
import type { ParseThreads } from "./parse-threads.ts";
import { listResource } from "./list.ts";
import { resumable, shownResourceVersion } from "../../../sdk/resource-version.ts";
import { explained, type RetryLog, retryLog } from "./readiness.ts";

export type StreamingListMode = "auto" | "always" | "never";

export interface ReflectorConfig {
  type: ResourceType;
  scope: Scope;
  /** The resume-point key (see resumeKey). */
  key: string;
  pageSize: number;
  streamingList: StreamingListMode;
  watchTimeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  /**
   * Whether `type` is what discovery said (a resource given as group/version/resource): its kind can change (a CRD
   * re-created with another), so an object of another kind ends the run for discovery to be asked again. A built-in's
   * cannot: such an object is a bad line, and the watch is retried where it was.
   */
  discovered?: boolean;
}

export interface ReflectorDeps {
  changes: ChangeSink;
  requester: Requester;
  metrics: SourceMetrics;
  logger: Logger;
  /** Called once, when the resource's state is known (initial list done, or resumed). */
  onSynced(): void;
  /** Where watch lines are parsed, when the core takes prepared changes (watch.ts). */
  parseThreads?: ParseThreads;
  /**
   * Why the resource is not synced yet: its last error while retrying; undefined once synced (for /readyz). Optional:
   * a reflector run on its own (tests) reports to nobody.
   */
  failing?(reason: string | undefined): void;
}

/** A watch that ends this fast with nothing in it is a failure (a proxy cutting it), not a timeout. */
const SHORT_WATCH_MS = 1000;

export class Reflector {
  /** Where the next watch starts; undefined means the state must be listed first. */
  private resourceVersion: string | undefined;
  private streaming: boolean;
  private synced = false;
  private readonly backoff: Backoff;
  /** Between relists with no watch delivering in between (recover()). */
  private readonly relistBackoff: Backoff;
  /** Whether a watch delivered since the last relist: the first relist of a run is at once too. */
  private watchDelivered = true;
  private readonly logger: Logger;
  /** The log of failed lists and watches, and of list pages retried on their own. */
  private readonly retries: RetryLog;
  private readonly pageRetries: RetryLog;
  /** What a server may send with every change: an event of an unknown type, a resourceVersion not resumed from. */
  private readonly warnSkipped: ReturnType<typeof rateLimitedWarn>;

  constructor(
    private readonly config: ReflectorConfig,
    private readonly deps: ReflectorDeps,
  ) {
    const stored = deps.changes.resumePoint(config.key, config.type.kind);
    // One an earlier kubemeta stored (it kept a change's resourceVersion unchecked): listed from instead.
    this.resourceVersion = resumable(stored) ? stored : undefined;
    this.streaming = config.streamingList !== "never";
    this.backoff = new Backoff(config.backoff);
    this.relistBackoff = new Backoff(config.backoff);
    this.logger = deps.logger.child({ resource: config.type.resource });
    this.retries = retryLog(this.logger, "list/watch failed; retrying", "list/watch works again");
    this.pageRetries = retryLog(this.logger, "list page failed; retrying it", "list pages work again");
    this.warnSkipped = rateLimitedWarn(this.logger);
  }

  /**
   * Runs until the signal aborts ("stopped"), or until the API server answers 404 ("gone": it no longer serves the
   * resource, e.g. its CRD was deleted; retrying would only repeat the 404) or, for a `discovered` resource, sends an
   * object of another kind ("gone" too: it serves the resource with another kind now). Never throws.
   */
  async run(signal: AbortSignal): Promise<"stopped" | "gone"> {
    while (!signal.aborted) {
      try {
        const result = await this.cycle(signal);
        if (result.progressed) this.worked();
        else if (result.elapsedMs < SHORT_WATCH_MS) throw new Error("the watch ended at once without events");
        if (result.overdue) this.logger.warn("the API server kept a watch open past its timeout; watching again");
        this.restarted(result.overdue ? "overdue" : "end");
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ApiError && err.code === 404) {
          this.restarted("gone");
          this.logger.warn("the API server no longer serves the resource", { detail: err.message });
          return "gone";
        }
        if (err instanceof KindChanged && this.config.discovered) {
          this.restarted("kind-changed");
          this.failed(err);
          this.logger.warn("the API server sent an object of another kind; asking discovery again", {
            detail: err.message,
          });
          return "gone";
        }
        await this.recover(explained(err, this.config.scope), signal);
      }
    }
    return "stopped";
  }

  /** Lists if needed, then watches until the watch ends normally. */
  private async cycle(signal: AbortSignal): Promise<WatchResult> {
    if (this.resourceVersion === undefined && this.streaming) {
      try {
        return await this.watch(signal, true);
      } catch (err) {
        if (!this.streamingRefused(err)) throw err;
        this.streaming = false;
        this.logger.info("the API server does not serve streaming lists; using paginated LIST", {
          detail: (err as Error).message,
        });
      }
    }
    if (this.resourceVersion === undefined) this.resourceVersion = await this.list(signal);
    return this.watch(signal, false);
  }

  /**
   * With `auto`, how a server says it does not serve streaming lists: 422 Invalid
   * (v1.19–v1.26 forbid `resourceVersionMatch` on a watch; v1.27–v1.31 forbid
   * `sendInitialEvents` while the WatchList feature gate is off, its default), or a
   * plain watch in answer (older servers, some proxies), which consumeWatch reports as
   * StreamingListIgnored. A 400 is not one of them: it means a bad selector, which a
   * LIST would not fix.
   */
  private streamingRefused(err: unknown): boolean {
    if (this.config.streamingList !== "auto") return false;
    if (err instanceof StreamingListIgnored) return true;
    return err instanceof ApiError && err.code === 422;
  }

  private watch(signal: AbortSignal, initial: boolean): Promise<WatchResult> {
    const { type, scope, watchTimeoutMs, key } = this.config;
    const params = selectorParams(scope);
    params.set("watch", "1");
    params.set("allowWatchBookmarks", "true");
    // ±10 %, so that the watches of all resources do not re-open at the same moment.
    const timeoutSeconds = Math.max(1, Math.round((watchTimeoutMs / 1000) * (0.9 + Math.random() * 0.2)));
    params.set("timeoutSeconds", String(timeoutSeconds));
    if (initial) {
      params.set("sendInitialEvents", "true");
      params.set("resourceVersionMatch", "NotOlderThan");
    } else {
      params.set("resourceVersion", this.resourceVersion!);
    }
    return consumeWatch({
      path: `${collectionPath(type, scope)}?${params}`,
      type,
      key,
      initial,
      timeoutSeconds,
      deps: this.deps,
      signal,
      onResourceVersion: (rv) => {
        // The end of a streaming list's initial state (from no resource version) is the list's, not the watch's.
        if (this.resourceVersion !== undefined) this.watchDelivered = true;
        this.resourceVersion = rv;
        // A watch that delivers is a success: the failure that ends it is the first in a row, not the next one.
        this.worked();
      },
      onSynced: () => {
        this.markSynced();
        // Where a resumed watch is known to work: on a quiet resource, behind a server that sends no bookmarks, no
        // event may come for as long as the watch is open.
        this.retries.succeeded();
      },
      onUnusableResourceVersion: (rv) => {
        this.warnSkipped("not resuming from a resourceVersion no API server writes", {
          resourceVersion: shownResourceVersion(rv),
        });
      },
      onUnknownEvent: (eventType) => {
        this.deps.metrics.rejected.inc({ reason: "unknown_event_type" });
        this.warnSkipped("skipped a watch event of a type not known", { type: eventType });
      },
    });
  }

  /** Paginated LIST inside a relist; returns the list's resourceVersion. */
  private list(signal: AbortSignal): Promise<string> {
    return listResource({
      ...this.config,
      deps: this.deps,
      logger: this.logger,
      signal,
      backoff: this.backoff,
      relistBackoff: this.relistBackoff,
      pageRetries: this.pageRetries,
      onPageFailed: (err) => this.failed(err),
      onListed: () => {
        this.markSynced();
        this.worked();
      },
    });
  }

  private async recover(err: unknown, signal: AbortSignal): Promise<void> {
    if (err instanceof ApiError && err.needsRelist) {
      // After a watch that delivered, at once; again before one did (the server's window shorter than a list and
      // the watch after it), after a backoff: at once, each attempt would send the whole resource, back to back.
      if (this.watchDelivered) this.relistBackoff.reset();
      const delayMs = this.watchDelivered ? 0 : this.relistBackoff.next();
      this.watchDelivered = false;
      this.logger.info("the server cannot resume from our resourceVersion; relisting", {
        resourceVersion: this.resourceVersion,
        detail: err.message,
        delayMs,
      });
      this.resourceVersion = undefined;
      this.restarted(err.expired ? "expired" : "too-large");
      await sleep(delayMs, signal);
      return;
    }
    const { delayMs, reason } = retryDelay(err, this.backoff);
    this.restarted(reason);
    this.retries.failed(err, { reason, delayMs });
    this.failed(err);
    await sleep(delayMs, signal);
  }

  /** Until synced, the last error is why the resource is not ready: connection refused, 401, a TLS failure… */
  private failed(err: unknown) {
    if (this.synced) return;
    this.deps.failing?.(`list/watch failing, retrying: ${errorText(err)}`);
  }

  /** A watch delivered or a list completed: the next failure is the first of a run. */
  private worked() {
    this.backoff.reset();
    this.retries.succeeded();
  }

  private restarted(reason: string) {
    this.deps.metrics.watchRestarts.inc({ resource: this.config.type.resource, reason });
  }

  private markSynced() {
    if (this.synced) return;
    this.synced = true;
    this.deps.failing?.(undefined);
    this.deps.onSynced();
  }
}
