/**
 * A node's NATS subject token: `<prefix>.node.<token>` (DESIGN.md, "NATS").
 *
 * Kubernetes requires a node name to be a DNS-1123 subdomain: at most 253 characters,
 * lowercase letters, digits, `-` and `.`, made of labels that start and end with a letter
 * or digit. A NATS subject splits on `.`, so a name such as
 * `ip-10-0-1-23.eu-west-1.compute.internal` cannot be one token as it is.
 *
 * The encoding: every `.` becomes `_`, and nothing else changes.
 *
 *     ip-10-0-1-23.eu-west-1.compute.internal  ⇄  ip-10-0-1-23_eu-west-1_compute_internal
 *
 * `_` never occurs in a legal name, so decoding (`_` back to `.`) is exact, and the token
 * only holds characters every NATS client and server accepts in a token (no `.`, `*`,
 * `>` or whitespace). Any language can do it with one replace. Both directions refuse
 * input that is not a legal name (or its token): an illegal name has no node stream.
 *
 * Dependency-free on purpose: consumers import it through the client library.
 */

const LABEL = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";
const NODE_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const MAX_NODE_NAME = 253;

/** True when `name` is a DNS-1123 subdomain: what a node's name, or a label key's prefix, must be. */
export function isDnsSubdomain(name: string): boolean {
  return name.length <= MAX_NODE_NAME && NODE_NAME.test(name);
}

/** True when `name` is a legal Kubernetes node name (a DNS-1123 subdomain). */
export const isNodeName = isDnsSubdomain;

/** The one-token form of a legal node name. Throws a RangeError for anything else. */
export function encodeNodeToken(name: string): string {
  if (!isNodeName(name)) throw new RangeError(`not a legal node name (DNS-1123 subdomain): ${JSON.stringify(name)}`);
  return name.replaceAll(".", "_");
}

/** The node name a token stands for. Throws a RangeError when it is not the token of a legal name. */
export function decodeNodeToken(token: string): string {
  const name = token.replaceAll("_", ".");
  if (token.includes(".") || !isNodeName(name)) throw new RangeError(`not a node token: ${JSON.stringify(token)}`);
  return name;
}
