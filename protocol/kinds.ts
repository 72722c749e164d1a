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
