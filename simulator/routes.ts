/** URL paths of the Kubernetes REST API, mapped to what the test server serves there. */
import type { ResourceType } from "./resource-types.ts";
import { apiVersions, VERSION_INFO, type ServedResources } from "./resources.ts";

export type Route =
  /** No body: a discovery path of a group or group version not served (404, and counted as discovery). */
  | { kind: "discovery"; body: object | undefined }
  | { kind: "collection"; type: ResourceType; namespace: string | null }
  | { kind: "object"; type: ResourceType; namespace: string | null; name: string }
  | { kind: "notFound" };

const NOT_FOUND: Route = { kind: "notFound" };

/** `rest` is what follows `/api/v1` or `/apis/<group>/<version>`. */
function resourceRoute(resources: ServedResources, groupVersion: string, rest: string[]): Route {
  if (rest.length === 0) {
    return { kind: "discovery", body: resources.apiResourceList(groupVersion) };
  }
  // /namespaces/<ns>/<resource>[/<name>]; "/namespaces/<ns>" alone is GET of a Namespace.
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const type = resources.atPath(groupVersion, rest[2]!);
    if (!type?.namespaced) return NOT_FOUND;
    if (rest.length === 3) return { kind: "collection", type, namespace: rest[1]! };
    return rest.length === 4 ? { kind: "object", type, namespace: rest[1]!, name: rest[3]! } : NOT_FOUND;
  }
  const type = resources.atPath(groupVersion, rest[0]!);
  if (!type) return NOT_FOUND;
  if (rest.length === 1) return { kind: "collection", type, namespace: null };
  // A namespaced resource has no cluster-wide GET by name.
  return rest.length === 2 && !type.namespaced ? { kind: "object", type, namespace: null, name: rest[1]! } : NOT_FOUND;
}

export function route(path: string, serverAddress: string, resources: ServedResources): Route {
  const parts = path
    .split("/")
    .filter((part) => part !== "")
    .map(decodeURIComponent);
  if (parts.length === 1 && parts[0] === "version") return { kind: "discovery", body: VERSION_INFO };
  if (parts[0] === "api") {
    if (parts.length === 1) return { kind: "discovery", body: apiVersions(serverAddress) };
    return parts[1] === "v1" ? resourceRoute(resources, "v1", parts.slice(2)) : NOT_FOUND;
  }
  if (parts[0] === "apis") {
    if (parts.length === 1) return { kind: "discovery", body: resources.apiGroupList() };
    if (parts.length === 2) {
      return { kind: "discovery", body: resources.apiGroupDocument(parts[1]!) };
    }
    return resourceRoute(resources, `${parts[1]}/${parts[2]}`, parts.slice(3));
  }
  return NOT_FOUND;
}
