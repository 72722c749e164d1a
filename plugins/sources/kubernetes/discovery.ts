/**
 * API discovery of one resource: `GET /apis/<group>/<version>` (or `/api/v1`) answers an
 * APIResourceList, which gives the resource's kind and scope. A resource the API server
 * does not serve yet (a CRD not installed: 404 for its group version, or the resource
 * absent from the list) is waited for, not retried as an error: discovery is asked again
 * at a bounded rate until the resource appears, and the source says why it waits.
 */
import { Backoff, sleep } from "../../../protocol/retry.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import { ApiError } from "../../../kube/status.ts";
import { retryDelay, type Requester } from "./request.ts";
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
}

/** Resolves with the resource's type once the API server serves it; undefined when the signal aborts first. */
export async function whenServed(options: WhenServedOptions, signal: AbortSignal): Promise<ResourceType | undefined> {
  const { ref, requester, logger, waiting } = options;
  const name = gvrText(ref);
  // Equal jitter: looks at least half the interval apart, yet out of step with other kubemetas.
  const polls = new Backoff({ ...options.interval, jitter: "equal" });
  const failures = new Backoff(options.backoff);
  let waited = false;
  while (!signal.aborted) {
    let delayMs: number;
    try {
      const found = await discover(ref, requester, signal);
      if (typeof found !== "string") {
        waiting(undefined);
        if (waited) logger.info("the API server serves the resource now", { resource: name });
        return found;
      }
      if (!waited)
        logger.info("waiting for a resource the API server does not serve", { resource: name, reason: found });
      waited = true;
      waiting(`${name} (${found})`);
      failures.reset();
      delayMs = polls.next();
    } catch (err) {
      if (signal.aborted) break;
      delayMs = retryDelay(err, failures).delayMs;
      logger.warn("discovery failed; retrying", { resource: name, error: err, delayMs });
      waiting(`${name} (discovery failed: ${(err as Error).message})`);
    }
    await sleep(delayMs, signal);
  }
  return undefined;
}
