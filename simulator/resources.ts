/**
 * The resource types one test API server serves (the built-in ones of resource-types.ts, and
 * custom resources installed at run time as a CRD installs them), and the discovery documents
 * a real kube-apiserver (v1.36, kind) returns for them.
 */
import { apiVersionOf, RESOURCE_TYPES, type ResourceType } from "./resource-types.ts";

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
  /**
   * What discovery lists it with; default: a CRD's verbs. An aggregated API serves fewer (metrics.k8s.io's pods: get
   * and list, no watch).
   */
  verbs?: string[];
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

  /** Serves a custom resource from now on, as kube-apiserver does once its CRD is established; returns it. */
  install(spec: CustomResourceSpec): ResourceType {
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
      ...(spec.verbs ? { verbs: spec.verbs } : {}),
    };
    this.types.push(type);
    return type;
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
          verbs: type.verbs ?? (type.custom ? CUSTOM_VERBS : type.namespaced ? VERBS : CLUSTER_VERBS),
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
