/**
 * One resource's life in the source: found through discovery unless built in, listed and watched by a reflector, and
 * looked for again when the API server stops serving it. One that stays unserved (its CRD deleted, perhaps while
 * kubemeta was down, so that no watch sent the DELETED of its objects) has what the store holds of it retracted.
 */
import type { ChangeSink } from "../../../sdk/contract.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import { Backoff, sleep } from "../../../protocol/retry.ts";
import { whenServed } from "./discovery.ts";
import type { ParseThreads } from "./parse-threads.ts";
import type { SourceReadiness } from "./readiness.ts";
import { Reflector, type ReflectorConfig } from "./reflector.ts";
import type { Requester } from "./request.ts";
import { possibleResumeKeys, resumeKey, type ResourceRef } from "./resources.ts";
import { countEventsFromZero, type SourceMetrics } from "./telemetry.ts";

export interface FollowConfig extends Omit<ReflectorConfig, "type" | "key"> {
  /** Between looks of discovery at a resource not served (see WhenServedOptions.interval). */
  discovery: { initialMs: number; maxMs: number };
}

export interface FollowDeps {
  changes: ChangeSink;
  requester: Requester;
  metrics: SourceMetrics;
  logger: Logger;
  readiness: SourceReadiness;
  parseThreads?: ParseThreads;
}

/** Follows `ref` until the signal aborts. */
export async function follow(
  ref: ResourceRef,
  config: FollowConfig,
  deps: FollowDeps,
  signal: AbortSignal,
): Promise<void> {
  const { discovery, ...watching } = config;
  const { changes, requester, logger, readiness } = deps;
  const afterGone = new Backoff(config.backoff);
  const refused = kindRefusal(ref, deps);
  countEventsFromZero(deps.metrics, ref.resource);
  let type = ref.type;
  for (;;) {
    type ??= await whenServed(
      {
        ref,
        requester,
        logger,
        interval: discovery,
        backoff: config.backoff,
        waiting: (reason) => readiness.waiting(ref.name, reason),
        async unserved() {
          for (const key of possibleResumeKeys(ref, config.scope)) await changes.retract(key);
        },
      },
      signal,
    );
    if (!type) return;
    const key = resumeKey(type, config.scope);
    const watchedAs = changes.claimKind(key, type.kind);
    refused.report(watchedAs === undefined ? undefined : { kind: type.kind, watchedAs });
    if (watchedAs !== undefined) {
      // Looked at again: the other resource may be retracted (its CRD deleted), or this one's kind change.
      await sleep(discovery.maxMs, signal);
      if (signal.aborted) return;
      type = ref.type;
      continue;
    }
    const reflector = new Reflector(
      { ...watching, type, key, discovered: ref.type === undefined },
      {
        changes,
        requester,
        metrics: deps.metrics,
        logger,
        parseThreads: deps.parseThreads,
        onSynced: () => readiness.synced(ref.name),
        failing: (error) => readiness.failing(ref.name, error),
      },
    );
    const began = performance.now();
    if ((await reflector.run(signal)) === "stopped") return;
    // A 404 for a resource discovery still lists (a proxy, an aggregated API between two states) would have it
    // listed and watched again back to back; one served for a while starts the backoff over.
    if (performance.now() - began > config.backoff.maxMs) afterGone.reset();
    await sleep(afterGone.next(), signal);
    type = undefined;
  }
}

/**
 * What the source says of a resource whose kind another resource watches already: /readyz names both for as long as
 * it lasts, the log once each time it begins.
 */
function kindRefusal(ref: ResourceRef, { logger, readiness }: Pick<FollowDeps, "logger" | "readiness">) {
  let refusing = false;
  return {
    report(refusal: { kind: string; watchedAs: string } | undefined): void {
      if (refusal === undefined) {
        if (refusing) readiness.waiting(ref.name, undefined);
        refusing = false;
        return;
      }
      const { kind, watchedAs } = refusal;
      readiness.waiting(ref.name, `${ref.name} (its kind ${kind} is watched as ${watchedAs}: watch one of them)`);
      if (!refusing)
        logger.error("not watching a resource whose kind another resource watches: objects are kept by kind", {
          resource: ref.name,
          kind,
          watchedAs,
        });
      refusing = true;
    },
  };
}
