/**
 * The slim copy of a Kubernetes object: what identifies and labels a workload, plus per
 * kind the fields telemetry needs (DESIGN.md, "The update envelope"), plus what the
 * config's rules add (core/slim/rules.ts). Raw objects are never kept: a real 9 KB pod
 * slims to 1.2 KB (the kind v1.36 pods in tests/fixtures/k8s/real/: 6–10 KB raw, 1.0–1.2 KB slim).
 *
 * The slim copy is a projection: every field sits at the same path and with the same
 * meaning as in the raw object, so code written for Kubernetes objects reads it as is.
 * A kept list has the raw list's items in the raw order, some left out at most, never
 * reordered or added to (rules' paths through a list rely on it: core/slim/rules.ts).
 *
 * It must only change when its meaning does: the core drops a MODIFIED whose slim copy
 * digests like the previous one. So nothing that moves on every write is kept
 * (resourceVersion, generation, managedFields, heartbeat and probe times), maps are
 * key-sorted, and a list item (which comes without kind/apiVersion) slims exactly like
 * the same object from a watch event.
 */
import type { KubeObject } from "../sdk/model.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { BUILT_IN_API_VERSIONS, groupOf } from "../protocol/kinds.ts";
import { put, record, scalarList, scalars, stringMap, text, type Json } from "./slim/read.ts";
import { keepPaths } from "./slim/keep-paths.ts";
import { compileRules, type SlimOptions } from "./slim/rules.ts";
import { POD_PARTIAL_LISTS, slimPod } from "./slim/pod.ts";
import { NODE_PARTIAL_LISTS, slimEndpointSlice, slimNamespace, slimNode, slimService } from "./slim/cluster.ts";
import {
  HTTP_ROUTE_PARTIAL_LISTS,
  INGRESS_PARTIAL_LISTS,
  slimGateway,
  slimHTTPRoute,
  slimIngress,
} from "./slim/networking.ts";
import { slimHorizontalPodAutoscaler } from "./slim/autoscaling.ts";
import { slimPersistentVolumeClaim } from "./slim/storage.ts";
import {
  slimCronJob,
  slimDaemonSet,
  slimDeployment,
  slimJob,
  slimReplicaSet,
  slimStatefulSet,
} from "./slim/workloads.ts";

type KindSlimmer = (raw: Json, into: Json) => void;

// Maps, not object literals: a kind named like an Object.prototype member must find nothing.
const KIND_SLIMMERS = new Map<string, KindSlimmer>([
  ["Pod", slimPod],
  ["Node", slimNode],
  ["Service", slimService],
  ["EndpointSlice", slimEndpointSlice],
  ["Namespace", slimNamespace],
  ["ReplicaSet", slimReplicaSet],
  ["Deployment", slimDeployment],
  ["StatefulSet", slimStatefulSet],
  ["DaemonSet", slimDaemonSet],
  ["Job", slimJob],
  ["CronJob", slimCronJob],
  ["Ingress", slimIngress],
  ["Gateway", slimGateway],
  ["HTTPRoute", slimHTTPRoute],
  ["HorizontalPodAutoscaler", slimHorizontalPodAutoscaler],
  ["PersistentVolumeClaim", slimPersistentVolumeClaim],
]);

/** The lists each kind's slimmer keeps only some items of, by kind (keepPaths). */
const PARTIAL_LISTS = new Map<string, ReadonlySet<string>>([
  ["Pod", POD_PARTIAL_LISTS],
  ["Node", NODE_PARTIAL_LISTS],
  ["Ingress", INGRESS_PARTIAL_LISTS],
  ["HTTPRoute", HTTP_ROUTE_PARTIAL_LISTS],
]);

/**
 * The built-in group version of an object of `kind`, if it is the built-in kind: a custom resource may have a
 * built-in's kind (Knative's Service, Istio's Gateway) in a group of its own, and is then a custom resource like any
 * other. Another version of the built-in's group (autoscaling/v1, a Gateway API's v1beta1) is the built-in.
 */
function builtInApiVersion(kind: string, apiVersion: string | undefined): string | undefined {
  const builtIn = BUILT_IN_API_VERSIONS.get(kind);
  if (builtIn === undefined || (apiVersion !== undefined && groupOf(apiVersion) !== groupOf(builtIn))) return undefined;
  return builtIn;
}

const METADATA_FIELDS = ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"] as const;
const OWNER_FIELDS = ["kind", "name", "uid", "controller"] as const;

/**
 * The slim copy of a raw object of `kind` (the API kind, e.g. "Pod"). Never throws on odd input: missing fields are
 * simply absent.
 */
export function slim(kind: string, raw: KubeObject, options?: SlimOptions): SlimObject {
  const from = record(raw) ?? {};
  const object: Json = { kind };
  const written = text(from.apiVersion);
  const builtIn = builtInApiVersion(kind, written);
  // The version it was read at: another version of the built-in's group has fields of its own (autoscaling/v1).
  const apiVersion = written ?? builtIn;
  if (apiVersion !== undefined) object.apiVersion = apiVersion;
  const rules = compileRules(options);
  const rule = rules.kinds.get(kind);
  // A Secret keeps no annotations at all: tools store credentials there too
  // (e.g. OpenShift's openshift.io/token-secret.value), whatever the allow-list says.
  const keepAnnotation = kind === "Secret" ? undefined : rule === undefined ? rules.annotations : rule.annotations;
  put(object, "metadata", slimMetadata(from.metadata, keepAnnotation));
  if (builtIn !== undefined) KIND_SLIMMERS.get(kind)?.(from, object);
  if (rule !== undefined)
    keepPaths(from, object, rule.keep, builtIn === undefined ? undefined : PARTIAL_LISTS.get(kind));
  return object;
}

function slimMetadata(value: unknown, keepAnnotation: ((key: string) => boolean) | undefined): Json | undefined {
  const from = record(value);
  if (from === undefined) return undefined;
  const metadata = scalars(from, METADATA_FIELDS);
  put(metadata, "labels", stringMap(from.labels));
  if (keepAnnotation !== undefined) put(metadata, "annotations", stringMap(from.annotations, keepAnnotation));
  put(metadata, "ownerReferences", scalarList(from.ownerReferences, OWNER_FIELDS));
  return metadata;
}

const DIGEST_BITS = 53;

/**
 * Stable content digest of a slim object (a non-negative safe integer) used to suppress
 * no-op MODIFIEDs. Digests are persisted with the current state, so this must give the
 * same number for the same object in every process: wyhash with its fixed seed 0 does.
 */
export function digest(object: SlimObject): number {
  return digestOfJson(JSON.stringify(object));
}

/** digest() of the object `json` is the JSON.stringify of. */
export function digestOfJson(json: string): number {
  return Number(BigInt.asUintN(DIGEST_BITS, BigInt(Bun.hash.wyhash(json))));
}
