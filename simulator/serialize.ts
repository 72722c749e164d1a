/**
 * Objects as kube-apiserver writes them: field order, timestamps, watch event lines,
 * and list items (which carry no kind/apiVersion, but for custom resources).
 */
import type { KubeObject } from "../sdk/model.ts";
import { apiVersionOf, type ResourceType } from "./resource-types.ts";
import type { Entry } from "./table.ts";

const METADATA_ORDER = [
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
];

const listPrefixLength = new Map<ResourceType, number>();

/** The object as a list item: real lists carry no kind/apiVersion on built-in items, but keep them on custom ones. */
export function itemJson(entry: Entry): string {
  if (entry.type.custom) return entry.json;
  let length = listPrefixLength.get(entry.type);
  if (length === undefined) {
    length = `{"kind":${JSON.stringify(entry.type.kind)},"apiVersion":${JSON.stringify(apiVersionOf(entry.type))},`
      .length;
    listPrefixLength.set(entry.type, length);
  }
  return `{${entry.json.slice(length)}`;
}

export function eventLine(type: string, json: string): string {
  return `{"type":"${type}","object":${json}}\n`;
}

/** Kubernetes timestamps: RFC 3339, whole seconds, UTC. */
export function kubeTime(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

function orderedMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
  const ordered: Record<string, unknown> = {};
  for (const field of METADATA_ORDER) if (metadata[field] !== undefined) ordered[field] = metadata[field];
  for (const [field, value] of Object.entries(metadata))
    if (!(field in ordered) && value !== undefined) ordered[field] = value;
  return ordered;
}

export interface Serialized {
  object: KubeObject;
  json: string;
  specDigest: number | bigint;
}

/**
 * JSON with the keys of every object sorted, as Go's encoding/json writes a map: how an
 * unstructured custom resource comes out of the API server.
 */
export function sortedJson(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? "null" : sortedJson(item))).join(",")}]`;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const fields = Object.entries(value)
    .filter(([, field]) => field !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${fields.map(([key, field]) => `${JSON.stringify(key)}:${sortedJson(field)}`).join(",")}}`;
}

/** An object's JSON as the API server writes one of its type (keys sorted for a custom resource). */
export function serializeObject(type: ResourceType, object: KubeObject): string {
  return type.custom ? sortedJson(object) : JSON.stringify(object);
}

/**
 * `kind`, `apiVersion`, `metadata` in the Go struct's field order, the body as given,
 * `status` last: the order kube-apiserver writes (a custom resource: every key sorted).
 * The body is stringified on its own so its digest (for metadata.generation) costs no
 * second JSON.stringify. `generation` gets the body's digest and returns metadata.generation.
 */
export function serialize(
  type: ResourceType,
  input: KubeObject,
  metadata: Record<string, unknown>,
  generation: (digest: number | bigint) => number | undefined,
): Serialized {
  const { kind: _kind, apiVersion: _apiVersion, metadata: _metadata, status, ...body } = input;
  if (type.custom) {
    const specDigest = Bun.hash(sortedJson(body));
    const json = sortedJson({
      ...body,
      apiVersion: apiVersionOf(type),
      kind: type.kind,
      metadata: { ...metadata, generation: generation(specDigest) },
      status,
    });
    return { object: JSON.parse(json) as KubeObject, json, specDigest };
  }
  const bodyJson = JSON.stringify(body);
  const specDigest = Bun.hash(bodyJson);
  const ordered = orderedMetadata({ ...metadata, generation: generation(specDigest) });
  const object: KubeObject = {
    kind: type.kind,
    apiVersion: apiVersionOf(type),
    metadata: ordered as KubeObject["metadata"],
    ...body,
  };
  if (status !== undefined) object.status = status;
  const parts = [`{"kind":"${type.kind}","apiVersion":"${apiVersionOf(type)}","metadata":${JSON.stringify(ordered)}`];
  if (bodyJson !== "{}") parts.push(bodyJson.slice(1, -1));
  if (status !== undefined) parts.push(`"status":${JSON.stringify(status)}`);
  return { object, json: `${parts.join(",")}}`, specDigest };
}
