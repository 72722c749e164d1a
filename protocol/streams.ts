/**
 * Stream names (DESIGN.md, "Words"): `all`, `shared` and `node/<node name>`. One rule for
 * every entry point: a node stream names a legal Kubernetes node name.
 */
import { isNodeName } from "./node-token.ts";

/** Stream names a consumer may follow. */
export const ALL = "all";
export const SHARED = "shared";
export const NODE_PREFIX = "node/";

/** How a refused stream name is explained, wherever it was given. */
export const STREAM_NAME_RULE = '"all", "shared" or "node/<node name>" with a legal node name (DNS-1123 subdomain)';

/** The node a stream is about (`node/<name>`), or undefined for `all` and `shared`. */
export function nodeOfStream(stream: string): string | undefined {
  return stream.startsWith(NODE_PREFIX) ? stream.slice(NODE_PREFIX.length) : undefined;
}

/** True for `all`, `shared` and `node/<name>` where name is a legal node name. */
export function isStreamName(stream: string): boolean {
  if (stream === ALL || stream === SHARED) return true;
  const node = nodeOfStream(stream);
  return node !== undefined && isNodeName(node);
}
