/**
 * The core's work on one raw object that needs no state: check it, slim it, serialize and digest the slim copy, route
 * it. Pure and without I/O, so it runs on any thread: the pipeline runs it for apply(), and a source that parses in a
 * Worker loads this module there (sdk/prepared.ts, PreparedChanges) so that the main thread does neither.
 */
import type { PreparedChange, PreparerModule } from "../sdk/prepared.ts";
import type { KubeObject } from "../sdk/model.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { digestOfJson, slim } from "./slim.ts";
import { isPublished, type SlimOptions } from "./slim/rules.ts";
import { streamOf } from "./route.ts";

export function prepareChange(raw: KubeObject, options?: SlimOptions): PreparedChange {
  const kind = raw?.kind;
  const uid = raw?.metadata?.uid;
  // Anything but a string would make every commit fail, and the ones behind it wait forever.
  if (typeof kind !== "string" || kind === "") return { rejected: "no_kind" };
  if (typeof uid !== "string" || uid === "") return { rejected: "no_uid" };
  // Every Kubernetes object has one: stored without, it would be an object no consumer can name.
  const name = raw.metadata!.name;
  if (typeof name !== "string" || name === "") return { rejected: "no_name" };
  const resourceVersion = raw.metadata!.resourceVersion;
  let object: SlimObject;
  let json: string;
  let tooDeep: { tooDeep: true } | undefined;
  try {
    object = slim(kind, raw, options);
    json = JSON.stringify(object);
  } catch (error) {
    // A stack overflow copying or writing a subtree a rule keeps: thrown again at each delivery of the object, it
    // would stop its resource's watch for good. Without the rules nothing nests.
    if (!(error instanceof RangeError)) throw error;
    object = slim(kind, raw);
    json = JSON.stringify(object);
    tooDeep = { tooDeep: true };
  }
  const metadata = (object.metadata ?? {}) as { namespace?: string; name?: string };
  const identity = {
    kind,
    uid,
    namespace: metadata.namespace ?? null,
    name: metadata.name ?? "",
    resourceVersion: typeof resourceVersion === "string" ? resourceVersion : "",
    stream: streamOf(kind, object, options),
  };
  // Stored as UTF-8 text, a lone surrogate (a `\ud800` escape: no Go encoder writes one) is no string libSQL reads
  // back: it panicked the process. The slim copy's JSON escapes it, and keeps it.
  for (const value of Object.values(identity)) if (value?.isWellFormed() === false) return { rejected: "ill_formed" };
  return { ...identity, published: isPublished(kind, options), json, digest: digestOfJson(json), object, ...tooDeep };
}

/** This module as a PreparerModule: what a Worker calls once with the spec's options. */
export const createPreparer: PreparerModule["createPreparer"] = (options) => {
  const slimOptions = options as SlimOptions | undefined;
  return (raw) => prepareChange(raw, slimOptions);
};
