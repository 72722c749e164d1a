/**
 * API discovery of one resource: `GET /apis/<group>/<version>` (or `/api/v1`) answers an
 * APIResourceList, which gives the resource's kind and scope. A resource the API server
 * does not serve yet (a CRD not installed: 404 for its group version, or the resource
 * absent from the list) is waited for, not retried as an error: discovery is asked again
 * at a bounded rate until the resource appears, and the source says why it waits. One that
 * stays unserved (its CRD deleted, perhaps while kubemeta was down) has no objects any
 * more: the source is told, to retract what the store holds of them.
 */
import { Backoff, sleep } from "../../../protocol/retry.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import { ApiError } from "../../../kube/status.ts";
import { errorText } from "../../../protocol/error-text.ts";
import { retryLog } from "./readiness.ts";
import { retryDelay, unlessStopped, type Requester } from "./request.ts";
import { groupVersionPath, gvrText, type ResourceRef, type ResourceType } from "./resources.ts";

interface APIResourceList {
  resources?: Array<{ name?: unknown; kind?: unknown; namespaced?: unknown; verbs?: unknown }>;
}

const NOT_SERVED = "not served by the API server: is its CRD installed?";

/** The resource's type, or why it cannot be watched yet. Throws on a failed request other than 404. */
async function discover(ref: ResourceRef, requester: Requester, signal: AbortSignal): Promise<ResourceType | string> {
  const { group, version, resource } = ref;
  let list: APIResourceList;
  try {
    list = await requester.json<APIResourceList>({ verb: "discovery", resource, path: groupVersionPath(ref) }, signal);
  } catch (err) {
    if (err instanceof ApiError && err.code === 404) return NOT_SERVED;
    throw err;
  }
  const found = list.resources?.find((entry) => entry.name === resource);
  if (!found || typeof found.kind !== "string") return NOT_SERVED;
  // Kinds are stored (the resource each was last listed under), as UTF-8 text: a lone surrogate is none, and libSQL
  // panicked reading one back. No Go encoder writes one.
  if (found.kind === "" || !found.kind.isWellFormed()) return "served with a kind that is no well-formed Unicode";
  const { verbs } = found;
  if (Array.isArray(verbs) && !(verbs.includes("list") && verbs.includes("watch"))) {
    return "served without list and watch";
  }
  return { group, version, resource, kind: found.kind, namespaced: found.namespaced === true };
}

export interface WhenServedOptions {
  ref: ResourceRef;
  requester: Requester;
  logger: Logger;
  /** Between two discoveries that found the resource not served: from `initialMs`, doubling up to `maxMs`. */
  interval: { initialMs: number; maxMs: number };
  /** After a failed discovery request (the source's backoff; `Retry-After` wins). */
  backoff: { initialMs: number; maxMs: number };
  /** Why the resource is not watched yet, e.g. `v1/foos (not served…)`; undefined once it is served. */
  waiting(reason: string | undefined): void;
  /**
   * Called once the resource was found not served on two looks in a row at least `interval.initialMs` apart: its CRD
   * is gone, with its objects, not merely late (an API server that just restarted serves its CRDs by the second look).
   * A failed look starts the row again: only a clear "not served" counts. Tried again at the next look if it throws.
   */
  unserved(): Promise<void>;
}

/** Resolves with the resource's type once the API server serves it; undefined when the signal aborts first. */
export async function whenServed(options: WhenServedOptions, signal: AbortSignal): Promise<ResourceType | undefined> {
  const { ref, requester, logger, waiting } = options;
  const name = gvrText(ref);
  // Equal jitter: looks at least half the interval apart, yet out of step with other kubemetas.
  const polls = new Backoff({ ...options.interval, jitter: "equal" });
  const failures = new Backoff(options.backoff);
  const retries = retryLog(logger.child({ resource: name }), "discovery failed; retrying", "discovery works again");
  let waited = false;
  /** When the first of the looks in a row that found the resource not served answered. */
  let unservedSince: number | undefined;
  let told = false;
  while (!signal.aborted) {
    let delayMs: number;
    try {
      const found = await discover(ref, requester, signal);
      retries.succeeded();
      if (typeof found !== "string") {
        waiting(undefined);
        if (waited) logger.info("the API server serves the resource now", { resource: name });
        return found;
      }
      if (!waited)
        logger.info("waiting for a resource the API server does not serve", { resource: name, reason: found });
      waited = true;
      waiting(`${name} (${found})`);
      unservedSince = found === NOT_SERVED ? (unservedSince ?? performance.now()) : undefined;
      failures.reset();
      delayMs = polls.next();
    } catch (err) {
      if (signal.aborted) break;
      unservedSince = undefined;
      delayMs = retryDelay(err, failures).delayMs;
      retries.failed(err, { delayMs });
      waiting(`${name} (discovery failed: ${errorText(err)})`);
    }
    if (!told && unservedSince !== undefined && performance.now() - unservedSince >= options.interval.initialMs) {
      told = await tell(options, signal);
    }
    await sleep(delayMs, signal);
  }
  return undefined;
}

/** Calls `unserved`; false when it failed (logged) or the source stopped, so that the next look tries again. */
async function tell(options: WhenServedOptions, signal: AbortSignal): Promise<boolean> {
  try {
    await unlessStopped(options.unserved(), signal);
    return true;
  } catch (err) {
    if (!signal.aborted) options.logger.warn("could not retract a resource no longer served", { error: err });
    return false;
  }
}
