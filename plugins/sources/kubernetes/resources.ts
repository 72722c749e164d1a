/** The Kubernetes resources the source can watch, and how to address them. */

export interface ResourceType {
  /** Config name and plural resource name, e.g. `pods`. */
  resource: string;
  /** API group; "" for the core group. */
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

function type(resource: string, group: string, kind: string, namespaced = true): ResourceType {
  return { resource, group, version: "v1", kind, namespaced };
}

/** Everything kubemeta knows how to slim, in the order the config lists them by default. */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  type("pods", "", "Pod"),
  type("nodes", "", "Node", false),
  type("namespaces", "", "Namespace", false),
  type("services", "", "Service"),
  type("endpointslices", "discovery.k8s.io", "EndpointSlice"),
  type("replicasets", "apps", "ReplicaSet"),
  type("deployments", "apps", "Deployment"),
  type("statefulsets", "apps", "StatefulSet"),
  type("daemonsets", "apps", "DaemonSet"),
  type("jobs", "batch", "Job"),
  type("cronjobs", "batch", "CronJob"),
];

export const RESOURCE_NAMES = RESOURCE_TYPES.map((t) => t.resource) as [string, ...string[]];

export function resourceType(name: string): ResourceType {
  const found = RESOURCE_TYPES.find((t) => t.resource === name);
  if (!found) throw new Error(`unknown resource "${name}"; valid resources: ${RESOURCE_NAMES.join(", ")}`);
  return found;
}

/** `v1` or `apps/v1`: what list items lack and watch events carry. */
export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export interface Scope {
  /** Watch one namespace (cluster-scoped resources are always watched cluster-wide). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** The collection path, e.g. `/api/v1/pods` or `/apis/apps/v1/namespaces/web/deployments`. */
export function collectionPath(type: ResourceType, scope: Scope): string {
  const prefix = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  const namespace = type.namespaced && scope.namespace ? `/namespaces/${encodeURIComponent(scope.namespace)}` : "";
  return `${prefix}${namespace}/${type.resource}`;
}

/** The selectors of a request, as query parameters. */
export function selectorParams(scope: Scope): URLSearchParams {
  const params = new URLSearchParams();
  if (scope.labelSelector) params.set("labelSelector", scope.labelSelector);
  if (scope.fieldSelector) params.set("fieldSelector", scope.fieldSelector);
  return params;
}

/**
 * The resume-point key, e.g. `kubernetes/apps/v1/deployments?namespace=web`. It names
 * everything that decides which objects the watch sees, so a resourceVersion recorded
 * under other selectors is never resumed from.
 */
export function resumeKey(type: ResourceType, scope: Scope): string {
  const params = selectorParams(scope);
  if (type.namespaced && scope.namespace) params.set("namespace", scope.namespace);
  params.sort();
  const query = params.toString();
  return `kubernetes/${type.group || "core"}/${type.version}/${type.resource}${query ? `?${query}` : ""}`;
}
