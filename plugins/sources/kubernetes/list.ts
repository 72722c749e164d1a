/**
 * A relist by paginated LIST, for the reflector (reflector.ts) to watch from: each page's items handed to the core and
 * dropped, a page that fails retried on its own, the list begun again once its continue token expired.
 */
import type { ChangeSink } from "../../../sdk/contract.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import type { KubeObject } from "../../../sdk/model.ts";
import { type Backoff, sleep } from "../../../protocol/retry.ts";
import { ApiError } from "../../../kube/status.ts";
import { retryDelay, unlessStopped, type Requester } from "./request.ts";
import { apiVersionOf, collectionPath, selectorParams, type ResourceType, type Scope } from "./resources.ts";
import type { SourceMetrics } from "./telemetry.ts";
import { KindChanged } from "./watch.ts";
import { OversizedError } from "./lines.ts";
import { resumable, shownResourceVersion } from "../../../sdk/resource-version.ts";
import type { RetryLog } from "./readiness.ts";

export interface ListOptions {
  type: ResourceType;
  scope: Scope;
  /** The resume-point key (see resumeKey). */
  key: string;
  pageSize: number;
  deps: { changes: ChangeSink; requester: Requester; metrics: SourceMetrics };
  logger: Logger;
  signal: AbortSignal;
  /** The reflector's: a failed page waits as a failed list/watch does, and a watch that delivers resets it. */
  backoff: Backoff;
  /** The reflector's, between relists with no watch delivering in between: a list begun again waits it out too. */
  relistBackoff: Backoff;
  /** The log of list pages retried on their own. */
  pageRetries: RetryLog;
  /** A page failed, and is tried again. */
  onPageFailed(err: unknown): void;
  /** The list is complete, its end handed to the core. */
  onListed(): void;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

/** Paginated LIST inside a relist; returns the list's resourceVersion. */
export async function listResource(options: ListOptions): Promise<string> {
  const { type, key, signal, logger } = options;
  const { changes, metrics } = options.deps;
  const apiVersion = apiVersionOf(type);
  for (;;) {
    metrics.relists.inc({ resource: type.resource });
    const relist = changes.relist(key, type.kind);
    let token: string | undefined;
    // Continuation pages are free of the request budget: a token that comes back would page in a circle for ever.
    const tokensSeen = new Set<string>();
    try {
      let resourceVersion = "";
      do {
        const page = await listPage(options, token);
        const items = page.items ?? [];
        metrics.events.inc({ resource: type.resource, type: "ADDED" }, items.length);
        for (const item of items) {
          // A custom resource's items carry their kind, which is not the resource's any more after its CRD was
          // re-created with another: stamped with the old one, they would be published as objects of that kind.
          if (typeof item.kind === "string" && item.kind !== "" && item.kind !== type.kind)
            throw new KindChanged(`an object of kind ${item.kind} in a list of ${type.kind}`);
          // A built-in's list items carry no kind or apiVersion; the core needs them.
          item.kind = type.kind;
          item.apiVersion = apiVersion;
          const pending = changes.apply(key, "ADDED", item);
          if (pending) await unlessStopped(pending, signal);
        }
        token = page.metadata?.continue || undefined;
        resourceVersion = page.metadata?.resourceVersion ?? "";
        if (token !== undefined && tokensSeen.has(token))
          throw new Error(`a continue token of this list came back: the API server pages ${type.resource} in a circle`);
        if (token !== undefined) tokensSeen.add(token);
      } while (token);
      // Nothing to watch from: the list is given up, and tried again after the backoff.
      if (resourceVersion !== "" && !resumable(resourceVersion))
        throw new Error(
          `the list of ${type.resource} gave a resourceVersion no API server writes: ` +
            shownResourceVersion(resourceVersion),
        );
      await unlessStopped(relist.end(resourceVersion), signal);
      options.onListed();
      return resourceVersion;
    } catch (err) {
      relist.abort();
      // The continue token outlived etcd's compaction window: list again from the start, after a backoff (a list
      // slower than the window each time would otherwise be sent again and again, back to back).
      if (err instanceof ApiError && err.code === 410 && token !== undefined && !signal.aborted) {
        const delayMs = options.relistBackoff.next();
        logger.info("continue token expired; listing again", { detail: err.message, delayMs });
        await sleep(delayMs, signal);
        continue;
      }
      throw err;
    }
  }
}

/** One page; throttling and transient failures retry the same page (its token stays valid). */
async function listPage(options: ListOptions, token: string | undefined): Promise<ListPage> {
  const { type, scope, pageSize, signal } = options;
  const params = selectorParams(scope);
  params.set("limit", String(pageSize));
  if (token) params.set("continue", token);
  const request = {
    verb: "list" as const,
    resource: type.resource,
    path: `${collectionPath(type, scope)}?${params}`,
    continuation: token !== undefined,
  };
  for (;;) {
    try {
      const page = await options.deps.requester.json<ListPage>(request, signal);
      options.pageRetries.succeeded();
      return page;
    } catch (err) {
      request.continuation = false;
      if (signal.aborted || !transient(err)) throw err;
      const { delayMs } = retryDelay(err, options.backoff);
      options.pageRetries.failed(err, { delayMs });
      options.onPageFailed(err);
      await sleep(delayMs, signal);
    }
  }
}

/**
 * Worth retrying as it is: throttling, server errors, network failures, silence. Not a page past MAX_ANSWER_BYTES: the
 * list is given up, counted as a restart (`oversized`), and begun again after the backoff.
 */
function transient(err: unknown): boolean {
  if (err instanceof ApiError) return err.code === 429 || err.code >= 500;
  return !(err instanceof OversizedError);
}
