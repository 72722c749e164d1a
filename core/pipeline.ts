/**
 * The core, as sources see it (ChangeSink): drop MODIFIEDs that change nothing in the slim copy, number the rest,
 * and commit them in batches (commit-queue.ts). Slimming is not done here but in core/prepare.ts (below). It owns no
 * I/O: the store it is handed does the writing, and `onCommit` tells the log what landed.
 *
 * Data path. A change comes in through one of two entry points, and both end in applyPrepared (diff the digest
 * against the object's last one, number, queue). `prepared.apply` takes a change that prepareChange (core/prepare.ts:
 * slim copy as JSON text, digest, stream) already made on the source's parse thread, which loads prepare.ts by the
 * module URL `prepared.preparer` hands out: the kubernetes source's watch streams by default (`parseThreads: 1`).
 * `apply` takes a raw object and runs prepareChange here, on the main thread: a paginated LIST's items, a source
 * with `parseThreads: 0`, any source that does not use `prepared`.
 */
import type { ChangeSink, Relist, Store, StoreState, ObjectDigest } from "../sdk/contract.ts";
import type { PreparedChange } from "../sdk/prepared.ts";
import { changesRejected, type Logger, type Metrics } from "../sdk/telemetry.ts";
import type { ChangeType } from "../protocol/envelope.ts";
import { objectJsonOf, withObjectJson, type KubeObject, type Update } from "../sdk/model.ts";
import { nodeOfStream } from "../protocol/streams.ts";
import type { SlimOptions } from "./slim/rules.ts";
import { prepareChange } from "./prepare.ts";
import { createCommitQueue, type Uncommitted } from "./commit-queue.ts";
import { KnownObjects } from "./known-objects.ts";
import { updateTimes } from "./update-time.ts";
import { createRetractions, relistedKey } from "./retractions.ts";
import { createRelists } from "./relists.ts";
import { resumable } from "../sdk/resource-version.ts";

export interface PipelineOptions {
  store: Store;
  state: StoreState;
  /** Digests of the store's current objects: what a change is diffed against. */
  digests: ObjectDigest[];
  logger: Logger;
  metrics: Metrics;
  /** Called with each committed batch, in version order. */
  onCommit(updates: Update[]): void;
  /** The config's slim rules: what each kind's slim copy keeps, its route, and whether Secrets and ConfigMaps pass. */
  slim?: SlimOptions;
  /** The wall clock updates are stamped by (core/update-time.ts): Date.now by default. */
  clock?: () => number;
  /** The newest stored update's time (ms since the epoch), if any: no update is stamped earlier. */
  newestTime?: number;
  /** apply() asks its caller to wait once this many updates are pending. */
  highWater?: number;
  /**
   * Called when the store refuses a commit because another process now writes to it (WriterFencedError): the
   * pipeline commits nothing more, as after abandon(); its owner stops the sources.
   */
  onFenced?(error: Error, uncommittedUpdates: number): void;
  /**
   * Called after each failed commit that is retried, with how long its batch has failed (from its first try on), and
   * each second while a commit goes unanswered past STORE_UNANSWERED_MS (CommitQueueOptions.onFailing).
   */
  onCommitFailing?(error: Error, failingMs: number): void;
}

export interface Pipeline extends ChangeSink {
  /** Commits what is pending; after it, a failing commit is thrown instead of retried. */
  stop(): Promise<void>;
  /**
   * Gives up on what is not committed (the store keeps failing and shutdown cannot wait any longer): the commit
   * being retried is retried no more, and nothing else is committed. Returns what is given up. Nothing is lost for
   * good: a resume point is committed with its updates only, so the sources deliver it all again on the next start.
   */
  abandon(): Uncommitted;
  /** Checks that the store still takes a commit, if it was asked for none lately (CommitQueue.check). */
  checkStore(): void;
  /** Why the last commit failed, while it is being retried; undefined once a commit succeeds (for /readyz). */
  commitFailure(): Error | undefined;
  /** How long the commit in flight has waited for the store's answer (ms); 0 with none in flight (for /readyz). */
  commitUnansweredMs(): number;
  /**
   * Once every source has synced: retracts (as ChangeSink.retract) each resource that kinds were last relisted under
   * but no source asked about in this run: a resource taken out of the config, a source removed. Its objects would
   * otherwise stay in the state for good, since nothing lists their kind any more.
   */
  retractUnclaimed(): Promise<void>;
  /**
   * Once every source has synced: commits, after what they delivered, that the store's objects are whole
   * (CommitBatch.whole); resolves once that commit landed.
   */
  markWhole(): Promise<void>;
}

type Prepared = Exclude<PreparedChange, { rejected: unknown }>;

const ILL_FORMED = "whose identity is no well-formed Unicode";

export function createPipeline(options: PipelineOptions): Pipeline {
  const { store, state, logger, metrics } = options;
  const known = new KnownObjects();
  for (const d of options.digests) known.set(d.kind, d.uid, { digest: d.digest, stream: d.stream });
  const resumePoints = new Map(state.resumePoints);
  const streamHeads = new Map(state.streamHeads);
  /** The resources a source asked for the resume point of, or relisted, in this run: what the sources watch now. */
  const claimed = new Set<string>();
  /** The resource that watches each kind in this run (ChangeSink.claimKind). */
  const kindWatchers = new Map<string, string>();
  let nextVersion = state.head + 1;

  const queue = createCommitQueue({
    store,
    logger,
    metrics,
    highWater: options.highWater ?? 5000,
    onCommitted(updates, committedResume) {
      for (const [resource, rv] of committedResume) resumePoints.set(resource, rv);
      if (!abandoned) trackedObjects.set(known.size);
      if (updates.length > 0) options.onCommit(updates);
    },
    onFenced: options.onFenced,
    onFailing: options.onCommitFailing,
  });

  const retractions = createRetractions({
    store,
    known,
    queue,
    resumePoints,
    logger,
    retracted: metrics.counter(
      "kubemeta_retracted_objects_total",
      "Objects deleted without a DELETED from a source, by kind and reason " +
        "(relist, kind-changed, not-served, unwatched).",
    ),
    relisting: (kind, except) => relists.relisting(kind, except),
    enqueueDeleted: (current, rv) =>
      enqueue("DELETED", { ...current, json: objectJsonOf(current) }, rv, current.stream, 0),
  });

  const relists = createRelists({ queue, known, retractions, logger });

  const suppressed = metrics.counter(
    "kubemeta_updates_suppressed_total",
    "Changes that left the slim copy unchanged, by kind.",
  );
  const rejected = changesRejected(metrics);
  /** Kinds already logged as dropped: once per kind, not once per change. */
  const droppedKinds = new Set<string>();
  /** Resources and the kinds of another than their relist's they handed over, logged once each. */
  const otherKindsSaid = new Set<string>();
  const trackedObjects = metrics.gauge("kubemeta_tracked_objects", "Objects in the current state.");
  let abandoned = false;
  trackedObjects.set(known.size);

  const now = updateTimes({ clock: options.clock, after: options.newestTime, logger });

  function enqueue(
    type: ChangeType,
    change: Pick<Prepared, "kind" | "uid" | "namespace" | "name" | "json" | "object">,
    rv: string,
    stream: string | null,
    objectDigest: number,
  ) {
    const version = nextVersion++;
    const streamPrev = stream ? (streamHeads.get(stream) ?? 0) : 0;
    if (stream) streamHeads.set(stream, version);
    const { kind, uid, namespace, name } = change;
    const node = (stream && nodeOfStream(stream)) ?? null;
    const fields = { version, stream, streamPrev, type, kind, uid, namespace, name, node, resourceVersion: rv };
    queue.push(withObjectJson({ ...fields, time: now() }, change.json, change.object), objectDigest);
  }

  function apply(resource: string, type: ChangeType, raw: KubeObject): void | Promise<void> {
    return applyPrepared(resource, type, prepareChange(raw, options.slim));
  }

  function applyPrepared(resource: string, type: ChangeType, change: PreparedChange): void | Promise<void> {
    if ("rejected" in change) {
      rejected.inc({ reason: change.rejected });
      const said = change.rejected === "ill_formed" ? ILL_FORMED : "without kind, uid or name";
      logger.warn(`skipped a change ${said}`, { resource, type, reason: change.rejected });
      return;
    }
    const { kind, uid, resourceVersion: rv } = change;
    const relisted = relists.noteListed(resource, kind, uid);
    if (relisted !== undefined && relisted !== kind) return refuseOtherKind(resource, kind, relisted);
    if (relisted === undefined && resumable(rv)) queue.resume(resource, rv);
    if (change.tooDeep && type !== "DELETED") return refuseTooDeep(resource, type, change);

    const before = known.get(kind, uid);
    if (!change.published) noteUnpublishedKind(kind, resource);
    // An object of a kind no rule publishes any more (its rule was removed) is retracted on its next change.
    if (type === "DELETED" || !change.published) {
      if (!before) return queue.schedule();
      known.delete(kind, uid);
      enqueue("DELETED", change, rv, before.stream, 0);
      return queue.schedule();
    }
    if (before?.digest === change.digest) {
      suppressed.inc({ kind });
      return queue.schedule();
    }
    known.set(kind, uid, { digest: change.digest, stream: change.stream });
    enqueue(before ? "MODIFIED" : "ADDED", change, rv, change.stream, change.digest);
    return queue.schedule();
  }

  /** Its last state stays (a relist saw it): a copy without what the rules keep would be no copy of it. */
  function refuseTooDeep(resource: string, type: ChangeType, change: Prepared): void | Promise<void> {
    rejected.inc({ reason: "too_deep" });
    const { kind, namespace, name, uid } = change;
    logger.warn("skipped an object nested too deeply to copy what slim keeps", {
      resource,
      type,
      kind,
      namespace,
      name,
      uid,
    });
    return queue.schedule();
  }

  /**
   * A relist is the whole state of its kind: an object of another kind in it would be deleted by no relist's end nor
   * by the resource's retraction, and outlive its source. Said once per resource and kind, as a kind dropped is.
   */
  function refuseOtherKind(resource: string, kind: string, relisted: string): void {
    rejected.inc({ reason: "other_kind" });
    const said = `${resource}\n${kind}`;
    if (!otherKindsSaid.has(said)) {
      otherKindsSaid.add(said);
      logger.warn("skipped a change of another kind than its relist's", { resource, kind, relisted });
    }
  }

  /** Secrets and ConfigMaps hold configuration and credentials: they pass only when a slim rule names their kind. */
  function noteUnpublishedKind(kind: string, resource: string): void {
    rejected.inc({ reason: "kind_not_allowed" });
    if (droppedKinds.has(kind)) return;
    droppedKinds.add(kind);
    logger.warn("dropping every change of a kind no slim rule names (slim.kinds)", { kind, resource });
  }

  function claimKind(resource: string, kind: string): string | undefined {
    const other = kindWatchers.get(kind);
    if (other !== undefined && other !== resource) return other;
    releaseKinds(resource);
    kindWatchers.set(kind, resource);
    return undefined;
  }

  function releaseKinds(resource: string): void {
    for (const [kind, watcher] of kindWatchers) if (watcher === resource) kindWatchers.delete(kind);
  }

  function relist(resource: string, kind: string): Relist {
    claimed.add(resource);
    return relists.start(resource, kind);
  }

  return {
    resumePoint(resource, kind) {
      claimed.add(resource);
      const relistedBy = kind === undefined ? undefined : resumePoints.get(relistedKey(kind));
      // Listed since under another key (another scope): what is stored of the kind is not this resource's view.
      if (relistedBy !== undefined && relistedBy !== resource) return undefined;
      // The resource was listed for another kind (a CRD re-created with another kind): its resume point was that one's.
      if (kind !== undefined && retractions.kindsRelistedUnder(resource).some((other) => other !== kind))
        return undefined;
      return resumePoints.get(resource) || undefined; // FORGOTTEN (retractions.ts) is none
    },
    apply,
    prepared: {
      preparer: { module: new URL("./prepare.ts", import.meta.url).href, options: options.slim },
      apply: applyPrepared,
    },
    bookmark(resource, resourceVersion) {
      if (relists.isOpen(resource) || !resumable(resourceVersion)) return;
      queue.resume(resource, resourceVersion);
      return queue.schedule();
    },
    relist,
    claimKind,
    retract(resource) {
      releaseKinds(resource);
      return retractions.retract(resource, "not-served");
    },
    retractUnclaimed: () => retractions.retractUnclaimed(claimed),
    markWhole: queue.markWhole,
    flush: queue.flush,
    stop: queue.stop,
    checkStore: queue.check,
    commitFailure: queue.failure,
    commitUnansweredMs: queue.unansweredMs,
    abandon() {
      // A replica that writes no more tracks nothing: its last count would be summed with the next leader's.
      abandoned = true;
      trackedObjects.remove({});
      return queue.abandon();
    },
  };
}
