/**
 * The pipeline's relists (ChangeSink.relist): while one is open, what a resource delivers is its listed state, whose
 * uids are noted, and moves no resume point; its end deletes what the list no longer holds and commits the resume
 * point and the kind's marker (retractions.ts) with them.
 */
import type { Relist } from "../sdk/contract.ts";
import type { Logger } from "../sdk/telemetry.ts";
import type { CommitQueue } from "./commit-queue.ts";
import type { KnownObjects } from "./known-objects.ts";
import { FORGOTTEN, relistedKey, type Retractions } from "./retractions.ts";
import { resumable } from "../sdk/resource-version.ts";

interface OpenRelist {
  kind: string;
  /** The uids of the objects of `kind` listed so far. */
  seen: Set<string>;
}

export interface RelistOptions {
  queue: CommitQueue;
  known: KnownObjects;
  retractions: Retractions;
  logger: Logger;
}

export function createRelists(options: RelistOptions) {
  const { queue, known, retractions, logger } = options;
  const relists = new Map<string, OpenRelist>();

  function start(resource: string, kind: string): Relist {
    const open: OpenRelist = { kind, seen: new Set() };
    relists.set(resource, open);
    return {
      abort() {
        if (relists.get(resource) === open) relists.delete(resource);
      },
      async end(listed) {
        // One no API server writes is none: the next start lists again.
        const resourceVersion = resumable(listed) ? listed : FORGOTTEN;
        await queue.flush();
        if (relists.get(resource) !== open) return;
        const vanished = known.uidsOf(kind, open.seen);
        await retractions.emitTombstones(kind, vanished, "relist", resourceVersion);
        // A kind listed under this resource before is gone with the resource's old definition (a CRD re-created
        // with another kind): nothing lists it any more.
        for (const before of retractions.kindsRelistedUnder(resource)) {
          if (before !== kind) await retractions.dropKind(before, "kind-changed");
        }
        queue.resume(resource, resourceVersion);
        // In the same commit: the stored state of `kind` is now this resource's, whatever scope listed it before.
        queue.resume(relistedKey(kind), resource);
        queue.schedule();
        await queue.flush();
        // Open until its markers are committed: a retraction meanwhile leaves the kind to it (retractions.ts).
        if (relists.get(resource) === open) relists.delete(resource);
        logger.info("relist done", { resource, kind, seen: open.seen.size, deleted: vanished.length });
      },
    };
  }

  return {
    start,
    /** The kind `resource` is relisting now, if it is; a listed object of that kind is noted as seen. */
    noteListed(resource: string, kind: string, uid: string): string | undefined {
      const open = relists.get(resource);
      if (open && kind === open.kind) open.seen.add(uid);
      return open?.kind;
    },
    isOpen: (resource: string) => relists.has(resource),
    /** RetractionOptions.relisting. */
    relisting: (kind: string, except: string) =>
      [...relists].some(([resource, open]) => resource !== except && open.kind === kind),
  };
}
