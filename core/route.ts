/**
 * Which stream an update belongs to besides `all` (DESIGN.md, "Words"): a node agent
 * follows `node/<its node>` for its Pods and its Node, and `shared` for the cluster
 * context every node needs.
 */
import { NODE_PREFIX, SHARED } from "../protocol/streams.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { record } from "./slim/read.ts";

/**
 * The stream of an object besides `all`: "node/<name>" for a scheduled Pod and a Node, "shared" for any other kind,
 * null for an unscheduled Pod.
 */
export function streamOf(kind: string, slimObject: SlimObject): string | null {
  const node = nodeOf(kind, slimObject);
  if (node !== null) return NODE_PREFIX + node;
  // A Node without a name cannot be routed to its agent; it stays in `all` like an unscheduled Pod.
  return kind === "Pod" || kind === "Node" ? null : SHARED;
}

/** The node an object is bound to: a Pod's spec.nodeName, a Node's own name; null otherwise. */
export function nodeOf(kind: string, slimObject: SlimObject): string | null {
  let node: unknown;
  if (kind === "Pod") node = record(slimObject.spec)?.nodeName;
  else if (kind === "Node") node = record(slimObject.metadata)?.name;
  return typeof node === "string" && node !== "" ? node : null;
}
