/**
 * metadata.managedFields as kube-apiserver's server-side-apply bookkeeping writes them: one
 * entry per manager and subresource, each a FieldsV1 tree naming every field that manager set
 * ("f:<field>", "k:{<list keys>}" for items of keyed lists, "." for the field itself). The
 * trees are built from the object's own fields, so their size follows the object as in real
 * clusters, where they are a third or more of a pod's bytes (kind v1.36.2 captures in
 * ../shared/fixtures/k8s/real/: 33–44 %) and the first thing kubemeta must drop.
 */

/** Lists merged by key (`+listType=map` in the Go types), with their key fields in order. */
const LIST_KEYS: Record<string, string[]> = {
  containers: ["name"],
  initContainers: ["name"],
  env: ["name"],
  ports: ["containerPort", "protocol"],
  volumeMounts: ["mountPath"],
  volumes: ["name"],
  conditions: ["type"],
  podIPs: ["ip"],
  addresses: ["type"],
  ownerReferences: ["uid"],
};

/** Fields owned whole (`+listType=atomic`, `+mapType=atomic`, or structs the API marks granular=false). */
const ATOMIC = new Set([
  "args",
  "command",
  "tolerations",
  "nodeSelector",
  "containerStatuses",
  "hostIPs",
  "images",
  "fieldRef",
  "podCIDRs",
  "finalizers",
]);

/** Required lists carry no "." entry of their own (the kind captures: `f:containers` has none, `f:ports` has). */
const NO_SELF = new Set(["containers"]);

export type FieldsV1 = { [key: string]: FieldsV1 };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function listItemKey(item: Record<string, unknown>, keys: string[]): string {
  const picked: Record<string, unknown> = {};
  for (const key of keys) if (item[key] !== undefined) picked[key] = item[key];
  return `k:${JSON.stringify(picked)}`;
}

function fieldOf(name: string, value: unknown): FieldsV1 {
  if (ATOMIC.has(name)) return {};
  const self: FieldsV1 = NO_SELF.has(name) ? {} : { ".": {} };
  if (Array.isArray(value)) {
    const keys = LIST_KEYS[name];
    if (!keys || value.length === 0) return {};
    const items = value.filter(isObject).map((item) => [listItemKey(item, keys), item] as const);
    for (const [key, item] of items.sort(([a], [b]) => (a < b ? -1 : 1))) self[key] = { ".": {}, ...fieldsOf(item) };
    return self;
  }
  if (isObject(value) && Object.keys(value).length > 0) return { ...self, ...fieldsOf(value) };
  return {};
}

/** The FieldsV1 tree of every field of `object` (keys sorted, as the API server serializes the set). */
export function fieldsOf(object: Record<string, unknown>, skip: ReadonlySet<string> = new Set()): FieldsV1 {
  const tree: FieldsV1 = {};
  for (const name of Object.keys(object).sort()) {
    if (skip.has(name) || object[name] === undefined) continue;
    tree[`f:${name}`] = fieldOf(name, object[name]);
  }
  return tree;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: "Update";
  apiVersion: string;
  time: string;
  fieldsType: "FieldsV1";
  fieldsV1: FieldsV1;
  subresource?: "status";
}

/** One entry: `fields` is the FieldsV1 tree (see fieldsOf), `status` marks an update of the status subresource. */
export function managedEntry(manager: string, time: string, fields: FieldsV1, status = false): ManagedFieldsEntry {
  return {
    manager,
    operation: "Update",
    apiVersion: "v1",
    time,
    fieldsType: "FieldsV1",
    fieldsV1: fields,
    ...(status ? { subresource: "status" as const } : {}),
  };
}
