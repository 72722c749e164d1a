/**
 * The Kubernetes resources the source can watch, and how to address them: the named ones, and any resource by
 * group/version/resource (`argoproj.io/v1alpha1/rollouts`; the core group as `v1/<resource>`), whose kind and scope
 * API discovery tells.
 */
import * as v from "valibot";
import { BUILT_IN_API_VERSIONS, groupOf, versionOf } from "../../../protocol/kinds.ts";

export interface ResourceType {
  /** Plural resource name, as in the URL, e.g. `pods`. */
  resource: string;
  /** API group; "" for the core group. */
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

/** A resource the config names: where it is served, and its type when that is known without discovery. */
export interface ResourceRef {
  /** As the config lists it once parsed: the name of a named resource (`pods`), else `group/version/resource`. */
  name: string;
  group: string;
  version: string;
  resource: string;
  /** Kind and scope of a resource every API server serves; undefined when discovery must find them (a CRD). */
  type?: ResourceType;
}

/** A resource the config may name without its group and version. */
interface NamedResource extends ResourceType {
  /** Defined by a CRD, so served only once that is installed: found through discovery like any custom resource. */
  crd?: boolean;
  /** Watched only when the config names it, not by default. */
  optIn?: boolean;
}

/** A named resource of a built-in kind, at the group version kubemeta knows it by (protocol/kinds.ts). */
function named(resource: string, kind: string, { namespaced = true, crd = false, optIn = false } = {}): NamedResource {
  const apiVersion = BUILT_IN_API_VERSIONS.get(kind);
  if (apiVersion === undefined) throw new Error(`${kind} is not a built-in kind (protocol/kinds.ts)`);
  return { resource, group: groupOf(apiVersion), version: versionOf(apiVersion), kind, namespaced, crd, optIn };
}

const NAMED_RESOURCES: readonly NamedResource[] = [
  named("pods", "Pod"),
  named("nodes", "Node", { namespaced: false }),
  named("namespaces", "Namespace", { namespaced: false }),
  named("services", "Service"),
  named("endpointslices", "EndpointSlice"),
  named("replicasets", "ReplicaSet"),
  named("deployments", "Deployment"),
  named("statefulsets", "StatefulSet"),
  named("daemonsets", "DaemonSet"),
  named("jobs", "Job"),
  named("cronjobs", "CronJob"),
  named("ingresses", "Ingress", { optIn: true }),
  named("horizontalpodautoscalers", "HorizontalPodAutoscaler", { optIn: true }),
  named("persistentvolumeclaims", "PersistentVolumeClaim", { optIn: true }),
  named("gateways", "Gateway", { crd: true, optIn: true }),
  named("httproutes", "HTTPRoute", { crd: true, optIn: true }),
];

/** Every resource the config may name without group and version. */
const RESOURCE_NAMES = NAMED_RESOURCES.map((type) => type.resource);

/**
 * What the source watches by default: what telemetry needs on every cluster, and nothing a cluster may lack (a
 * resource the API server does not serve would keep the source unready).
 */
export const DEFAULT_RESOURCES = NAMED_RESOURCES.filter((type) => !type.optIn).map((type) => type.resource);

const LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DOMAIN = new RegExp(`^${LABEL}(\\.${LABEL})+$`);
const VERSION = /^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$/;
const PLURAL = new RegExp(`^${LABEL}$`);
/** Kubernetes' own groups without a dot; any other group is a domain, as the API server requires of a CRD's. */
const DOTLESS_GROUPS = new Set(["apps", "autoscaling", "batch", "policy"]);

/** Parses one entry of the config's `resources`; throws an Error that says what is wrong with it. */
export function parseResource(text: string): ResourceRef {
  const byName = NAMED_RESOURCES.find((type) => type.resource === text);
  if (byName) return refOf(byName);
  const parts = text.split("/");
  if (parts.length === 1) {
    throw new Error(
      `unknown resource "${text}": name one of ${RESOURCE_NAMES.join(", ")}, ` +
        "or give group/version/resource (argoproj.io/v1alpha1/rollouts; the core group as v1/<resource>)",
    );
  }
  if (parts.length > 3 || (parts.length === 2 && parts[0] !== "v1")) {
    throw new Error(
      `"${text}" is not group/version/resource (e.g. networking.k8s.io/v1/ingresses), ` +
        "nor v1/<resource> for the core group",
    );
  }
  const [group, version, resource] = (parts.length === 2 ? ["", ...parts] : parts) as [string, string, string];
  if (group === "core") throw new Error(`"${text}": the core group is written v1/<resource>, without a group`);
  if (group !== "" && !DOMAIN.test(group) && !DOTLESS_GROUPS.has(group)) {
    throw new Error(
      `"${text}": "${group}" is not an API group: a group is a domain with a dot (e.g. argoproj.io), ` +
        "and the core group is written v1/<resource>",
    );
  }
  if (!VERSION.test(version)) throw new Error(`"${text}": "${version}" is not an API version (v1, v1beta1, v2alpha1…)`);
  if (!PLURAL.test(resource)) {
    throw new Error(`"${text}": "${resource}" is not a resource: its plural in lower case, as in the URL (rollouts)`);
  }
  const same = NAMED_RESOURCES.find((t) => t.group === group && t.version === version && t.resource === resource);
  return same ? refOf(same) : { name: text, group, version, resource };
}

function refOf(named: NamedResource): ResourceRef {
  const { crd, optIn: _, ...type } = named;
  const { resource, group, version } = type;
  return { name: resource, group, version, resource, type: crd ? undefined : type };
}

/** `argoproj.io/v1alpha1/rollouts`, `v1/pods`: a resource in full, for messages. */
export function gvrText(ref: ResourceRef): string {
  return `${apiVersionOf(ref)}/${ref.resource}`;
}

export interface GroupResource {
  group: string;
  resource: string;
  /** Whether its objects live in namespaces, for a resource known by name; undefined when only discovery tells. */
  namespaced?: boolean;
}

/**
 * The API group and plural of each resource of a (validated) `resources` list, once each: what an RBAC rule names.
 */
export function groupResources(resources: readonly string[]): GroupResource[] {
  const seen = new Map<string, GroupResource>();
  for (const { group, resource } of resources.map(parseResource)) {
    const namespaced = NAMED_RESOURCES.find(
      (named) => named.group === group && named.resource === resource,
    )?.namespaced;
    seen.set(`${group}/${resource}`, { group, resource, ...(namespaced === undefined ? {} : { namespaced }) });
  }
  return [...seen.values()];
}

/** The built-in type of a named resource that every API server serves, e.g. `pods`. */
export function resourceType(name: string): ResourceType {
  const { type } = parseResource(name);
  if (!type) throw new Error(`"${name}" is known through API discovery only`);
  return type;
}

/** `v1` or `apps/v1`: what list items lack and watch events carry, and a group version's name. */
export function apiVersionOf(type: { group: string; version: string }): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export interface Scope {
  /** Watch one namespace (cluster-scoped resources are always watched cluster-wide). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** `/api/v1` or `/apis/<group>/<version>`: where a group version is served, and its discovery document. */
export function groupVersionPath(ref: { group: string; version: string }): string {
  return ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
}

/** The collection path, e.g. `/api/v1/pods` or `/apis/apps/v1/namespaces/web/deployments`. */
export function collectionPath(type: ResourceType, scope: Scope): string {
  const namespace = type.namespaced && scope.namespace ? `/namespaces/${encodeURIComponent(scope.namespace)}` : "";
  return `${groupVersionPath(type)}${namespace}/${type.resource}`;
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
export function resumeKey(type: Omit<ResourceType, "kind">, scope: Scope): string {
  const params = selectorParams(scope);
  if (type.namespaced && scope.namespace) params.set("namespace", scope.namespace);
  params.sort();
  const query = params.toString();
  return `kubernetes/${type.group || "core"}/${type.version}/${type.resource}${query ? `?${query}` : ""}`;
}

/**
 * The watch each of `resources` is under `scope`, as its resume key names it (`kubernetes.ts`' claims): two sources
 * that name one are one watch run twice, every change applied twice and their relists deleting each other's objects.
 * A custom resource's scope only discovery tells: named with a namespace it is taken as namespaced (a cluster-scoped
 * one then escapes this check, left to the kind's claim at run time).
 */
export function watchesOf(resources: readonly string[], scope: Scope): string[] {
  return resources.map((name) => {
    const ref = parseResource(name);
    return resumeKey(ref.type ?? { ...ref, namespaced: scope.namespace !== undefined }, scope);
  });
}

/**
 * The keys a resource the API server does not serve may have had its resume point under: its scope decides whether the
 * namespace is part of the key, and only discovery tells the scope.
 */
export function possibleResumeKeys(ref: ResourceRef, scope: Scope): string[] {
  const keys = [true, false].map((namespaced) => resumeKey({ ...ref, namespaced }, scope));
  return [...new Set(keys)];
}

/** One entry of `resources`: a named resource or group/version/resource, with the parser's message when neither. */
export const resourceEntry = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    try {
      parseResource(dataset.value);
    } catch (error) {
      addIssue({ message: (error as Error).message });
    }
  }),
);

/** One watch per group and resource: two versions of one would feed the core every object twice. */
export function oneVersionEach(names: string[]): string | undefined {
  const seen = new Map<string, ResourceRef>();
  for (const ref of names.map(parseResource)) {
    const other = seen.get(`${ref.group}/${ref.resource}`);
    if (other && other.version !== ref.version)
      return `${other.name} and ${ref.name} are one resource: list one version`;
    seen.set(`${ref.group}/${ref.resource}`, ref);
  }
  return undefined;
}
