/**
 * Which stream an update belongs to besides `all` (DESIGN.md, "Words"): a node agent
 * follows `node/<its node>` for its Pods, its Node and the objects a slim rule binds to a
 * node, and `shared` for the cluster context every node needs.
 */
import { NODE_PREFIX, SHARED } from "../protocol/streams.ts";
import { isNodeName } from "../protocol/node-token.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { record } from "./slim/read.ts";
import { valueAt } from "./slim/keep-paths.ts";
import { compileRules, type SlimOptions } from "./slim/rules.ts";

/**
 * The stream of an object besides `all`: "node/<name>" for a scheduled Pod, a Node and an object whose rule names a
 * node path holding a node name; null for an unscheduled Pod or such an object without one; "shared" for the rest.
 */
export function streamOf(kind: string, slimObject: SlimObject, options?: SlimOptions): string | null {
  const node = nodeOf(kind, slimObject, options);
  if (node !== null) return NODE_PREFIX + node;
  // A Node without a name cannot be routed to its agent; it stays in `all` like an unscheduled Pod.
  if (kind === "Pod" || kind === "Node") return null;
  return compileRules(options).kinds.get(kind)?.node === undefined ? SHARED : null;
}

/**
 * The node an object is bound to: a Pod's spec.nodeName, a Node's own name, the value at the node path of its rule
 * (read from the slim copy, which keeps that path); null otherwise.
 */
export function nodeOf(kind: string, slimObject: SlimObject, options?: SlimOptions): string | null {
  if (kind === "Pod") return nonEmpty(record(slimObject.spec)?.nodeName);
  if (kind === "Node") return nonEmpty(record(slimObject.metadata)?.name);
  const path = compileRules(options).kinds.get(kind)?.node;
  const node = path === undefined ? undefined : valueAt(slimObject, path);
  // A custom resource's field may hold anything; only a legal node name has a stream.
  return typeof node === "string" && isNodeName(node) ? node : null;
}

function nonEmpty(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}
