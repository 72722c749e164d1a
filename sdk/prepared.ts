/**
 * Changes prepared off the core's thread (sdk/source-contract.ts, ChangeSink.prepared): a source that parses on a
 * Worker loads the core's preparer there by the module URL the core hands out, and hands the core what it made. Plain
 * data throughout, so it crosses threads as it is.
 */
import type { ChangeType, SlimObject } from "../protocol/envelope.ts";
import type { KubeObject } from "./model.ts";

export interface PreparedChanges {
  preparer: PreparerSpec;
  /** ChangeSink.apply() of a change prepared with `preparer` (the same backpressure). */
  apply(resource: string, type: ChangeType, change: PreparedChange): void | Promise<void>;
}

/**
 * The core's per-object work as a module any thread can load: `(await import(module)).createPreparer(options)` gives
 * the function (a PreparerModule). Both are plain data, so they pass to a Worker.
 */
export interface PreparerSpec {
  module: string;
  options: unknown;
}

export interface PreparerModule {
  createPreparer(options: unknown): (raw: KubeObject) => PreparedChange;
}

/**
 * What the core makes of one raw object before it compares it with the state: its slim copy as JSON text, that
 * copy's digest and stream. Plain data (a structured clone of it is the same change), or why the object is refused.
 */
export type PreparedChange =
  | {
      kind: string;
      uid: string;
      namespace: string | null;
      name: string;
      resourceVersion: string;
      /** False for a kind no slim rule publishes (Secrets, ConfigMaps): the core drops it. */
      published: boolean;
      /** The slim copy, as JSON.stringify writes it. */
      json: string;
      digest: number;
      stream: string | null;
      /** The slim copy itself when prepared on the core's own thread (saves parsing `json` again). */
      object?: SlimObject;
      /**
       * What the slim rules keep of it nests deeper than the thread's stack can copy (only a hostile API server sends
       * that: kube-apiserver decodes no JSON past 10,000 levels): `json` is its slim copy without them, a DELETED's
       * tombstone, and the core refuses an ADDED or MODIFIED of it.
       */
      tooDeep?: true;
    }
  /** `ill_formed`: its kind, uid, namespace, name, resourceVersion or node holds a lone surrogate. */
  | { rejected: "no_kind" | "no_uid" | "no_name" | "ill_formed" };
