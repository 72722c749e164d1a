/**
 * The source's part of the plugin contract (contract.ts, which exports it too): the core as a source sees it, the
 * relists a source runs through it, and what the host hands a source.
 */
import type { ChangeType } from "../protocol/envelope.ts";
import type { Lifecycle, PluginContext } from "./contract.ts";
import type { KubeObject } from "./model.ts";
import type { PreparedChanges } from "./prepared.ts";

/**
 * The core, as a source sees it. Events are applied in order. Each is prepared (core/prepare.ts: slim copy, digest,
 * stream) inside `apply`, or before, on the source's own thread, when handed to `prepared.apply`; the core then
 * suppresses no-op MODIFIEDs, versions and commits them in batches.
 */
export interface ChangeSink {
  /**
   * The resourceVersion last committed for `resource` (a key the source chooses), if any. Given the `kind` it
   * watches, undefined too when `kind` was relisted since under another key (another scope's selectors): the stored
   * objects of that kind are that scope's, so resuming would keep the ones outside this scope for good; and when
   * `resource` was last listed for another kind (a CRD re-created with another kind). List again.
   *
   * Asking it (or relisting) is how a source says it still watches `resource`: once every source has synced, the
   * core retracts (as retract()) each resource kinds were last relisted under that no source asked for in this run.
   */
  resumePoint(resource: string, kind?: string): string | undefined;
  /**
   * Applies one watch or list event. Outside a relist, the object's resourceVersion
   * becomes `resource`'s resume point, committed in the same transaction as the update, if it is
   * one to resume from (sdk/resource-version.ts, as a bookmark's and a relist's end must be).
   * Returns a promise only when the core's queue is full: await it (backpressure).
   */
  apply(resource: string, type: ChangeType, object: KubeObject): void | Promise<void>;
  /** Records a watch BOOKMARK's resourceVersion as `resource`'s resume point. */
  bookmark(resource: string, resourceVersion: string): void | Promise<void>;
  /**
   * Starts a relist of `kind` for `resource`. Until `end`, apply() calls carry the
   * listed state and do not move the resume point; one of another kind than `kind` is skipped (counted as
   * `other_kind`): no relist of its kind would delete it. `end` emits DELETED for every
   * stored object of `kind` the relist did not contain (and every stored object of another
   * kind last relisted under `resource`), records `resourceVersion` as the resume point, and
   * resolves when all of it is committed.
   */
  relist(resource: string, kind: string): Relist;
  /**
   * Says that `resource` watches `kind` in this run, before it lists: returns the resource that watches it already,
   * else undefined. The state is kept by kind, so two resources of one kind (two groups' `Gateway`, one kind under two
   * sources' selectors) would each delete the other's objects at every relist: the one told of another must not watch
   * it. A resource retracted, or claiming another kind (a CRD re-created with another kind), no longer holds it.
   */
  claimKind(resource: string, kind: string): string | undefined;
  /**
   * The API server no longer serves `resource` (its CRD was deleted, perhaps while nobody watched: the API server
   * deleted its objects with it, and no DELETED of theirs will come). Emits DELETED for every stored object of the kind
   * last relisted under `resource` (a kind relisted since under another key is that key's, and kept), forgets
   * `resource`'s resume point, so that it lists afresh once served again, and resolves when all of it is committed.
   */
  retract(resource: string): Promise<void>;
  /** Resolves when everything applied so far is committed. */
  flush(): Promise<void>;
  /**
   * Present when the core takes changes prepared on another thread: a source that parses in a Worker prepares each
   * object there with `preparer` and hands the result to `apply`, so that the main thread neither parses nor slims.
   */
  prepared?: PreparedChanges;
}

export interface Relist {
  end(resourceVersion: string): Promise<void>;
  /** Abandons the relist (the list failed): nothing is deleted, the resume point is kept. */
  abort(): void;
}

export interface SourceContext extends PluginContext {
  changes: ChangeSink;
  /** Tells the host this source has delivered its initial state (for /readyz). */
  synced(): void;
  /**
   * Says why the source is not synced yet, e.g. "waiting for argoproj.io/v1alpha1/rollouts (…)": /readyz shows
   * `source <name>: <reason>` instead of `source <name> not synced`. Undefined clears it; after synced() it is ignored.
   */
  waiting(reason: string | undefined): void;
}

export type Source = Lifecycle;
