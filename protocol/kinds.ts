import * as v from "valibot";

/**
 * The group version of each built-in kind kubemeta knows. A built-in's slim copy carries it whatever version the
 * object was read at (a config may name gateway.networking.k8s.io/v1beta1/gateways; a source may leave apiVersion
 * out), so that its digest is the same however it was read, and the group tells a built-in from a custom resource of
 * the same kind (core/slim.ts); the kubernetes source addresses the resources it names by it
 * (plugins/sources/kubernetes/resources.ts).
 */
export const BUILT_IN_API_VERSIONS: ReadonlyMap<string, string> = new Map<string, string>([
  ["Pod", "v1"],
  ["Node", "v1"],
  ["Service", "v1"],
  ["Namespace", "v1"],
  ["Endpoints", "v1"],
  ["ConfigMap", "v1"],
  ["Secret", "v1"],
  ["ServiceAccount", "v1"],
  ["PersistentVolume", "v1"],
  ["PersistentVolumeClaim", "v1"],
  ["EndpointSlice", "discovery.k8s.io/v1"],
  ["ReplicaSet", "apps/v1"],
  ["Deployment", "apps/v1"],
  ["StatefulSet", "apps/v1"],
  ["DaemonSet", "apps/v1"],
  ["Job", "batch/v1"],
  ["CronJob", "batch/v1"],
  ["Ingress", "networking.k8s.io/v1"],
  ["HorizontalPodAutoscaler", "autoscaling/v2"],
  ["Gateway", "gateway.networking.k8s.io/v1"],
  ["HTTPRoute", "gateway.networking.k8s.io/v1"],
]);

/** The API group of an apiVersion: "" for the core group's "v1". */
export const groupOf = (apiVersion: string): string =>
  apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";

/** The version of an apiVersion: "v1" of "apps/v1" and of the core group's "v1". */
export const versionOf = (apiVersion: string): string => apiVersion.slice(apiVersion.indexOf("/") + 1);

/** The built-in kinds by their lower-case spelling. */
const BY_LOWER_CASE = new Map([...BUILT_IN_API_VERSIONS.keys()].map((kind) => [kind.toLowerCase(), kind]));

/**
 * The built-in kind `kind` is another case of (`HTTPRoute` for `HttpRoute`, `Pod` for `POD`), if any: a kind is
 * case-sensitive, so a rule or a filter by such a spelling would match no object.
 */
export function builtInKindCase(kind: string): string | undefined {
  const builtIn = BY_LOWER_CASE.get(kind.toLowerCase());
  return builtIn === kind ? undefined : builtIn;
}

/** What a config or a request is told of a kind builtInKindCase finds. */
export const caseRule = (builtIn: string) => `must be written ${builtIn}: a kind is case-sensitive`;

/** A kind filter's check, alike in the client library and the server: a built-in kind in another case is refused. */
export function builtInKindInItsCase() {
  return v.check(
    (kind: string) => builtInKindCase(kind) === undefined,
    ({ input }) => `${input} ${caseRule(builtInKindCase(input)!)}`,
  );
}
