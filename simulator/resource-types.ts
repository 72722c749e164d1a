/**
 * The built-in resource types of the test API server: names, scope, the field selectors the
 * real registry accepts, and the BOOKMARK body a real kube-apiserver (v1.36, kind) sends for
 * each. What one server serves of them, custom resources added, is resources.ts.
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
   * A custom resource: apiextensions-apiserver serves it as unstructured JSON, so keys come out sorted
   * (tests/fixtures/k8s/SOURCES.md, cr.FooBarList.json), list items keep kind and apiVersion, and a bookmark has
   * no body.
   */
  custom?: boolean;
  /** The verbs discovery lists, where they are not the usual ones (resources.ts, CustomResourceSpec.verbs). */
  verbs?: string[];
}

const POD_TEMPLATE_ZERO = `"template":{"metadata":{},"spec":{"containers":null}}`;

/** The built-in types, served by every test API server. */
export const RESOURCE_TYPES: readonly ResourceType[] = [
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
