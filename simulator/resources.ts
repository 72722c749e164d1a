/**
 * The resource types the test API server serves, and the discovery documents and
 * watch-bookmark objects a real kube-apiserver (v1.36, kind) returns for them.
 */

export interface ResourceType {
  /** Plural resource name, as in the URL and in request accounting: "pods". */
  resource: string;
  singular: string;
  kind: string;
  /** "" for the core group. */
  group: string;
  version: string;
  namespaced: boolean;
  shortNames: string[];
  /**
   * The body of a BOOKMARK object after `metadata`: the Go zero value of the type as
   * encoding/json writes it (struct fields without omitempty stay, as `null` or `{}`).
   * The Pod one is byte-for-byte the kind v1.36.2 capture; the others follow the same
   * rule from the type definitions.
   */
  bookmarkBody: string;
  /** Field selector labels the real registry accepts for this type (besides metadata.name/namespace). */
  fieldLabels: string[];
}

const POD_TEMPLATE_ZERO = `"template":{"metadata":{},"spec":{"containers":null}}`;

export const RESOURCE_TYPES: ResourceType[] = [
  {
    resource: "pods",
    singular: "pod",
    kind: "Pod",
    group: "",
    version: "v1",
    namespaced: true,
    shortNames: ["po"],
    bookmarkBody: `"spec":{"containers":null},"status":{}`,
    fieldLabels: [
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.nominatedNodeName",
    ],
  },
  {
    resource: "nodes",
    singular: "node",
    kind: "Node",
    group: "",
    version: "v1",
    namespaced: false,
    shortNames: ["no"],
    bookmarkBody:
      `"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},` +
      `"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"",` +
      `"containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}`,
    fieldLabels: ["spec.unschedulable"],
  },
  {
    resource: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    group: "",
    version: "v1",
    namespaced: false,
    shortNames: ["ns"],
    bookmarkBody: `"spec":{},"status":{}`,
    fieldLabels: ["status.phase"],
  },
  {
    resource: "services",
    singular: "service",
    kind: "Service",
    group: "",
    version: "v1",
    namespaced: true,
    shortNames: ["svc"],
    bookmarkBody: `"spec":{},"status":{"loadBalancer":{}}`,
    fieldLabels: ["spec.clusterIP", "spec.type"],
  },
  {
    resource: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    group: "discovery.k8s.io",
    version: "v1",
    namespaced: true,
    shortNames: [],
    bookmarkBody: `"addressType":"","endpoints":null,"ports":null`,
    fieldLabels: [],
  },
  {
    resource: "deployments",
    singular: "deployment",
    kind: "Deployment",
    group: "apps",
    version: "v1",
    namespaced: true,
    shortNames: ["deploy"],
    bookmarkBody: `"spec":{"selector":null,${POD_TEMPLATE_ZERO},"strategy":{}},"status":{}`,
    fieldLabels: [],
  },
  {
    resource: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    group: "apps",
    version: "v1",
    namespaced: true,
    shortNames: ["rs"],
    bookmarkBody: `"spec":{"selector":null,${POD_TEMPLATE_ZERO}},"status":{"replicas":0}`,
    fieldLabels: ["status.replicas"],
  },
  {
    resource: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    group: "apps",
    version: "v1",
    namespaced: true,
    shortNames: ["sts"],
    bookmarkBody:
      `"spec":{"selector":null,${POD_TEMPLATE_ZERO},"serviceName":"","updateStrategy":{}},` +
      `"status":{"replicas":0,"availableReplicas":0}`,
    fieldLabels: [],
  },
  {
    resource: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    group: "apps",
    version: "v1",
    namespaced: true,
    shortNames: ["ds"],
    bookmarkBody:
      `"spec":{"selector":null,${POD_TEMPLATE_ZERO},"updateStrategy":{}},` +
      `"status":{"currentNumberScheduled":0,"numberMisscheduled":0,"desiredNumberScheduled":0,"numberReady":0}`,
    fieldLabels: [],
  },
  {
    resource: "jobs",
    singular: "job",
    kind: "Job",
    group: "batch",
    version: "v1",
    namespaced: true,
    shortNames: [],
    bookmarkBody: `"spec":{${POD_TEMPLATE_ZERO}},"status":{}`,
    fieldLabels: ["status.successful"],
  },
  {
    resource: "cronjobs",
    singular: "cronjob",
    kind: "CronJob",
    group: "batch",
    version: "v1",
    namespaced: true,
    shortNames: ["cj"],
    bookmarkBody: `"spec":{"schedule":"","jobTemplate":{"spec":{${POD_TEMPLATE_ZERO}}}},"status":{}`,
    fieldLabels: [],
  },
];

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

const byKind = new Map(RESOURCE_TYPES.map((type) => [type.kind, type]));
const byPath = new Map(RESOURCE_TYPES.map((type) => [`${apiVersionOf(type)}/${type.resource}`, type]));

export function typeOfKind(kind: string): ResourceType {
  const type = byKind.get(kind);
  if (!type) throw new Error(`test API server does not serve kind ${kind}`);
  return type;
}

/** The type served at `/api/<version>/<resource>` or `/apis/<group>/<version>/<resource>`. */
export function typeAtPath(groupVersion: string, resource: string): ResourceType | undefined {
  return byPath.get(`${groupVersion}/${resource}`);
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CLUSTER_VERBS = VERBS.filter((verb) => verb !== "deletecollection");

/** GET /api */
export function apiVersions(serverAddress: string): object {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

function groupVersions(): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const type of RESOURCE_TYPES) {
    if (!type.group) continue;
    const versions = groups.get(type.group) ?? [];
    if (!versions.includes(type.version)) versions.push(type.version);
    groups.set(type.group, versions);
  }
  return groups;
}

/** An APIGroup as in the kind v1.36 APIGroupList capture. */
function apiGroup(name: string, versions: string[]): object {
  const entries = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: entries, preferredVersion: entries[0] };
}

/** GET /apis */
export function apiGroupList(): object {
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [...groupVersions()].map(([name, versions]) => apiGroup(name, versions)),
  };
}

/** GET /apis/<group>, or undefined when the group is not served. */
export function apiGroupDocument(group: string): object | undefined {
  const versions = groupVersions().get(group);
  return versions && { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) };
}

/** GET /api/v1 or /apis/<group>/<version>, or undefined when not served. */
export function apiResourceList(groupVersion: string): object | undefined {
  const types = RESOURCE_TYPES.filter((type) => apiVersionOf(type) === groupVersion);
  if (types.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: types.map((type) => ({
      name: type.resource,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: type.namespaced ? VERBS : CLUSTER_VERBS,
      ...(type.shortNames.length > 0 ? { shortNames: type.shortNames } : {}),
    })),
  };
}

/** GET /version, as a kind v1.36.2 node image answers. */
export const VERSION_INFO = {
  major: "1",
  minor: "36",
  emulationMajor: "1",
  emulationMinor: "36",
  minCompatibilityMajor: "1",
  minCompatibilityMinor: "35",
  gitVersion: "v1.36.2",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-06-10T00:00:00Z",
  goVersion: "go1.25.5",
  compiler: "gc",
  platform: "linux/amd64",
};
