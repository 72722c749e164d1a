/**
 * The data model inside kubemeta: a change as it comes in, an update as the store keeps
 * it, and the envelope a consumer gets from it (protocol/envelope.ts).
 */
import type { Envelope, SlimObject } from "../protocol/envelope.ts";
import { ALL } from "../protocol/streams.ts";

/** Raw Kubernetes object as parsed from the API server. Never kept after slimming. */
export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/**
 * A committed update, as the store keeps it. `streamPrev` is the previous version of
 * `stream` (0 when it is the first); the `all` stream's prev is derived (version - 1,
 * the log being gap-free).
 */
export interface Update extends Omit<Envelope, "epoch" | "prev" | "stream"> {
  /** `shared`, `node/<name>`, or null for an update that is in `all` only (unscheduled pod). */
  stream: string | null;
  streamPrev: number;
}

/** The current state of one object, as the store keeps it (for snapshots and diffs). */
export interface CurrentObject {
  kind: string;
  uid: string;
  namespace: string | null;
  name: string;
  node: string | null;
  stream: string | null;
  /** Version of the update that produced this state. */
  version: number;
  resourceVersion: string;
  object: SlimObject;
}

/** True when an update belongs to the given stream. */
export function inStream(update: Pick<Update, "stream">, stream: string): boolean {
  return stream === ALL || update.stream === stream;
}

/** The envelope of an update as seen on `stream` (which must contain it). */
export function toEnvelope(epoch: string, update: Update, stream: string): Envelope {
  const onAll = stream === ALL;
  return {
    epoch,
    version: update.version,
    prev: onAll ? update.version - 1 : update.streamPrev,
    stream,
    type: update.type,
    kind: update.kind,
    uid: update.uid,
    namespace: update.namespace,
    name: update.name,
    node: update.node,
    resourceVersion: update.resourceVersion,
    time: update.time,
    object: update.object,
  };
}

/**
 * A current object as a snapshot (an SSE RESET, a NATS reset) delivers it: an `ADDED`
 * envelope whose `version` is that of the update that produced its state and whose `prev`
 * is 0, since the objects of a snapshot form no chain (a consumer checks `prev` from the
 * snapshot's position on); `time` is when the snapshot was taken.
 */
export function snapshotEnvelope(epoch: string, stream: string, current: CurrentObject, time: string): Envelope {
  const { kind, uid, namespace, name, node, version, resourceVersion, object } = current;
  return {
    epoch,
    version,
    prev: 0,
    stream,
    type: "ADDED",
    kind,
    uid,
    namespace,
    name,
    node,
    resourceVersion,
    time,
    object,
  };
}
