/**
 * The resource types the test API server serves (built-in ones, and custom resources
 * installed at run time as a CRD installs them), and the discovery documents and
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
  /**
   * A custom resource: apiextensions-apiserver serves it as unstructured JSON, so keys come out sorted (see
   * tests/fixtures/k8s/real/SOURCES.md), list items keep kind and apiVersion, and a bookmark has no body.
   */
  custom?: boolean;
}

const POD_TEMPLATE_ZERO = `"template":{"metadata":{},"spec":{"containers":null}}`;

/** The built-in types, served by every test API server. */
const RESOURCE_TYPES: readonly ResourceType[] = [
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
  {
    resource: "ingresses",
    singular: "ingress",
    kind: "Ingress",
    group: "networking.k8s.io",
    version: "v1",
    namespaced: true,
    shortNames: ["ing"],
    bookmarkBody: `"spec":{},"status":{"loadBalancer":{}}`,
    fieldLabels: [],
  },
  {
    resource: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    kind: "HorizontalPodAutoscaler",
    group: "autoscaling",
    version: "v2",
    namespaced: true,
    shortNames: ["hpa"],
    bookmarkBody: `"spec":{"scaleTargetRef":{"kind":"","name":""},"maxReplicas":0},"status":{"desiredReplicas":0}`,
    fieldLabels: [],
  },
  {
    resource: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    kind: "PersistentVolumeClaim",
    group: "",
    version: "v1",
    namespaced: true,
    shortNames: ["pvc"],
    bookmarkBody: `"spec":{"resources":{}},"status":{}`,
    fieldLabels: [],
  },
  {
    // The one type the test API server also takes writes for over HTTP (writes.ts): leader election.
    resource: "leases",
    singular: "lease",
    kind: "Lease",
    group: "coordination.k8s.io",
    version: "v1",
    namespaced: true,
    shortNames: [],
    bookmarkBody: `"spec":{}`,
    fieldLabels: [],
  },
];

export function apiVersionOf(type: { group: string; version: string }): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** A custom resource as its CustomResourceDefinition declares it (`spec.group`, `spec.names`, `spec.scope`). */
export interface CustomResourceSpec {
  group: string;
  version: string;
  /** `spec.names.plural`, e.g. "foobars". */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** Default: the kind in lower case. */
  singular?: string;
  shortNames?: string[];
}

/** The Gateway API's standard channel, a CRD bundle that no API server serves until it is installed. */
export const GATEWAY_API: readonly CustomResourceSpec[] = [
  { group: "gateway.networking.k8s.io", version: "v1", resource: "gateways", kind: "Gateway", namespaced: true },
  { group: "gateway.networking.k8s.io", version: "v1", resource: "httproutes", kind: "HTTPRoute", namespaced: true },
];

// The order of apiextensions-apiserver's discovery controller and of kube-apiserver's registry.
const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CLUSTER_VERBS = VERBS.filter((verb) => verb !== "deletecollection");
const CUSTOM_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"];
const STATUS_VERBS = ["get", "patch", "update"];

/** discovery.StorageVersionHash: base64 of the first 8 bytes of sha256("<group>/<version>/<kind>"). */
function storageVersionHash(type: ResourceType): string {
  const digest = new Bun.CryptoHasher("sha256").update(`${type.group}/${type.version}/${type.kind}`).digest();
  return digest.subarray(0, 8).toString("base64");
}

/** GET /api */
export function apiVersions(serverAddress: string): object {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

/** An APIGroup as in the kind v1.36 APIGroupList capture. */
function apiGroup(name: string, versions: string[]): object {
  const entries = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: entries, preferredVersion: entries[0] };
}

/**
 * What one test API server serves: the built-in types, and the custom resources installed
 * since it started (its CRDs), each from the moment of its installation, as discovery,
 * LIST, WATCH and GET see them.
 */
export class ServedResources {
  private readonly types: ResourceType[] = [...RESOURCE_TYPES];

  /** Serves a custom resource from now on, as kube-apiserver does once its CRD is established. */
  install(spec: CustomResourceSpec): void {
    if (this.atPath(apiVersionOf(spec), spec.resource)) {
      throw new Error(`${apiVersionOf(spec)}/${spec.resource} is already served`);
    }
    const type: ResourceType = {
      resource: spec.resource,
      singular: spec.singular ?? spec.kind.toLowerCase(),
      kind: spec.kind,
      group: spec.group,
      version: spec.version,
      namespaced: spec.namespaced,
      shortNames: spec.shortNames ?? [],
      bookmarkBody: "",
      fieldLabels: [],
      custom: true,
    };
    this.types.push(type);
  }

  /** Stops serving a custom resource, as when its CRD is deleted; returns it. */
  uninstall(group: string, version: string, resource: string): ResourceType {
    const type = this.atPath(apiVersionOf({ group, version }), resource);
    if (!type?.custom) throw new Error(`${apiVersionOf({ group, version })}/${resource} is not an installed CRD`);
    this.types.splice(this.types.indexOf(type), 1);
    return type;
  }

  /**
   * The type of objects of `kind`, written `Kind` or, where two groups serve the kind, `Kind.group` (as kubectl
   * does); with `apiVersion`, the one of that group and version.
   */
  ofKind(kind: string, apiVersion?: string): ResourceType {
    const dot = kind.indexOf(".");
    const [name, group] = dot < 0 ? [kind, undefined] : [kind.slice(0, dot), kind.slice(dot + 1)];
    const found = this.types.filter(
      (type) =>
        type.kind === name &&
        (group === undefined || type.group === group) &&
        (apiVersion === undefined || apiVersionOf(type) === apiVersion),
    );
    if (found.length === 1) return found[0]!;
    const what = `kind ${kind}${apiVersion ? ` of ${apiVersion}` : ""}`;
    if (found.length === 0) throw new Error(`test API server does not serve ${what}`);
    throw new Error(`${what} is served by several groups; name it Kind.group`);
  }

  /** The type served at `/api/<version>/<resource>` or `/apis/<group>/<version>/<resource>`. */
  atPath(groupVersion: string, resource: string): ResourceType | undefined {
    return this.types.find((type) => type.resource === resource && apiVersionOf(type) === groupVersion);
  }

  private groupVersions(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const type of this.types) {
      if (!type.group) continue;
      const versions = groups.get(type.group) ?? [];
      if (!versions.includes(type.version)) versions.push(type.version);
      groups.set(type.group, versions);
    }
    return groups;
  }

  /** GET /apis */
  apiGroupList(): object {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [...this.groupVersions()].map(([name, versions]) => apiGroup(name, versions)),
    };
  }

  /** GET /apis/<group>, or undefined when the group is not served. */
  apiGroupDocument(group: string): object | undefined {
    const versions = this.groupVersions().get(group);
    return versions && { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) };
  }

  /**
   * GET /api/v1 or /apis/<group>/<version>, or undefined when not served. A custom resource is listed as
   * apiextensions-apiserver lists it: its verbs in that server's order, and its status subresource.
   */
  apiResourceList(groupVersion: string): object | undefined {
    const types = this.types.filter((type) => apiVersionOf(type) === groupVersion);
    if (types.length === 0) return undefined;
    return {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion,
      resources: types.flatMap((type) => {
        const resource = {
          name: type.resource,
          singularName: type.singular,
          namespaced: type.namespaced,
          kind: type.kind,
          verbs: type.custom ? CUSTOM_VERBS : type.namespaced ? VERBS : CLUSTER_VERBS,
          ...(type.shortNames.length > 0 ? { shortNames: type.shortNames } : {}),
          storageVersionHash: storageVersionHash(type),
        };
        if (!type.custom) return [resource];
        const status = {
          name: `${type.resource}/status`,
          singularName: "",
          namespaced: type.namespaced,
          kind: type.kind,
          verbs: STATUS_VERBS,
        };
        return [resource, status];
      }),
    };
  }
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
