/**
 * What the core deletes without a DELETED from a source (pipeline.ts): objects a relist no longer finds, the kinds a
 * resource no longer lists (a CRD re-created with another kind), and whole resources nothing serves or watches any
 * more. It keeps, as resume points committed with the updates, which resource each kind was last relisted under:
 * what a later run needs to know which stored objects are whose.
 */
import type { Store } from "../sdk/contract.ts";
import type { CurrentObject } from "../sdk/model.ts";
import type { Counter, Logger } from "../sdk/telemetry.ts";
import type { CommitQueue } from "./commit-queue.ts";
import type { KnownObjects } from "./known-objects.ts";

/**
 * The resume point that names the resource a kind was last relisted for: kept beside the sources' own keys
 * (`kubernetes/…`), committed with the relist's end.
 */
const RELISTED = "core/relisted/";
export const relistedKey = (kind: string) => `${RELISTED}${kind}`;
/**
 * A resume point a retraction forgot: the store keeps resume points and removes none, so an empty one stands for
 * none (nor was an empty resourceVersion ever one to resume from).
 */
export const FORGOTTEN = "";

/**
 * Why the core deleted objects no source sent a DELETED for (`kubemeta_retracted_objects_total`'s `reason`): a relist
 * no longer found them, a resource's kind changed (a CRD re-created with another), the API server no longer serves
 * the resource (its CRD gone), or no source watches it any more.
 */
export type RetractionReason = "relist" | "kind-changed" | "not-served" | "unwatched";

const RETRACTED_WHY: Record<"not-served" | "unwatched", string> = {
  "not-served": "the API server no longer serves",
  unwatched: "no source watches any more",
};

export interface RetractionOptions {
  store: Store;
  known: KnownObjects;
  queue: CommitQueue;
  /** The committed resume points, markers included (the pipeline keeps them current). */
  resumePoints: ReadonlyMap<string, string>;
  logger: Logger;
  /** `{kind, reason}`: objects deleted here. */
  retracted: Counter;
  /** Numbers and queues a DELETED of `current` at `rv`. */
  enqueueDeleted(current: CurrentObject, rv: string): void;
  /**
   * Whether `kind` is being relisted under a resource other than `except` (its relist open, or ended with its markers
   * not committed yet): that relist, not a retraction, says which of the kind's objects are gone.
   */
  relisting(kind: string, except: string): boolean;
}

export type Retractions = ReturnType<typeof createRetractions>;

export function createRetractions(options: RetractionOptions) {
  const { store, known, queue, resumePoints, logger, retracted, enqueueDeleted } = options;
  /**
   * DELETED for objects that vanished while nobody watched: their last stored state is the tombstone, at `rv` when a
   * list says when they were gone, else at their own last resourceVersion.
   */
  async function emitTombstones(kind: string, uids: string[], reason: RetractionReason, rv?: string): Promise<void> {
    for (let i = 0; i < uids.length; i += 500) {
      const chunk = uids.slice(i, i + 500);
      const { objects } = await store.snapshot({ kind, uids: chunk });
      for (const current of objects) {
        if (!known.delete(kind, current.uid)) continue;
        enqueueDeleted(current, rv ?? current.resourceVersion);
        retracted.inc({ kind, reason });
      }
      for (const uid of chunk) known.delete(kind, uid);
    }
  }

  /**
   * DELETED for every stored object of `kind`, at its last resourceVersion, and the resource it was listed under
   * forgotten: nothing lists the kind any more. Returns how many objects it deleted.
   */
  async function dropKind(kind: string, reason: RetractionReason): Promise<number> {
    const uids = known.uidsOf(kind);
    await emitTombstones(kind, uids, reason);
    queue.resume(relistedKey(kind), FORGOTTEN);
    return uids.length;
  }

  /** The kinds whose stored objects are `resource`'s: the last relist of each was under it (committed). */
  function kindsRelistedUnder(resource: string): string[] {
    const kinds: string[] = [];
    for (const [key, relistedBy] of resumePoints) {
      if (key.startsWith(RELISTED) && relistedBy === resource) kinds.push(key.slice(RELISTED.length));
    }
    return kinds;
  }

  async function retract(resource: string, reason: "not-served" | "unwatched"): Promise<void> {
    // Committed first: the markers and resume points read below are then the whole story.
    await queue.flush();
    const kinds = kindsRelistedUnder(resource);
    let deleted = 0;
    for (const kind of kinds) {
      // Relisted under another resource meanwhile (a source's new scope, while this one is retracted as unwatched):
      // dropped, the objects that relist has just listed unchanged would be deleted with the rest.
      if (options.relisting(kind, resource) || resumePoints.get(relistedKey(kind)) !== resource) continue;
      deleted += await dropKind(kind, reason);
    }
    if (kinds.length === 0 && !resumePoints.get(resource)) return;
    queue.resume(resource, FORGOTTEN);
    queue.schedule();
    await queue.flush();
    logger.info(`retracted a resource ${RETRACTED_WHY[reason]}`, { resource, kinds, deleted });
  }

  /** Retracts every resource that kinds were last relisted under and that is not in `claimed`. */
  async function retractUnclaimed(claimed: ReadonlySet<string>): Promise<void> {
    const unclaimed = new Set<string>();
    for (const [key, relistedBy] of resumePoints) {
      if (key.startsWith(RELISTED) && relistedBy && !claimed.has(relistedBy)) unclaimed.add(relistedBy);
    }
    for (const resource of unclaimed) await retract(resource, "unwatched");
  }

  return { emitTombstones, dropKind, kindsRelistedUnder, retract, retractUnclaimed };
}
