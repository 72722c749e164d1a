/**
 * Slim copies of workload owners: what a pod's owner chain needs (selector, template
 * labels) and their replica counts. observedGeneration, conditions, collisionCount and
 * revisions are left out: controllers rewrite them on every reconcile.
 */
import { labelSelector, put, record, scalars, stringMap, type Json } from "./read.ts";

const REPLICA_COUNTS = ["replicas", "readyReplicas", "availableReplicas"] as const;

export const slimReplicaSet = workload(["replicas"], REPLICA_COUNTS);
export const slimDeployment = workload(["replicas"], REPLICA_COUNTS);
// serviceName: the headless Service that gives each pod its stable DNS name.
export const slimStatefulSet = workload(["replicas", "serviceName"], REPLICA_COUNTS);
export const slimDaemonSet = workload([], ["desiredNumberScheduled", "currentNumberScheduled", "numberReady"]);
export const slimJob = workload(
  ["completions", "parallelism"],
  ["active", "succeeded", "failed", "startTime", "completionTime"],
);

/** The slimmer of a kind whose spec has `selector` and a pod `template`. */
function workload(specFields: readonly string[], statusFields: readonly string[]) {
  return (raw: Json, into: Json): void => {
    const rawSpec = record(raw.spec);
    const spec = scalars(rawSpec, specFields);
    put(spec, "selector", labelSelector(rawSpec?.selector));
    put(spec, "template", templateLabels(rawSpec?.template));
    put(into, "spec", spec);
    put(into, "status", scalars(raw.status, statusFields));
  };
}

/** A CronJob's pods are two templates down: spec.jobTemplate.spec.template. */
export function slimCronJob(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, ["schedule", "timeZone", "suspend"]);
  const template = templateLabels(record(record(rawSpec?.jobTemplate)?.spec)?.template);
  if (template !== undefined) spec.jobTemplate = { spec: { template } };
  put(into, "spec", spec);
  put(into, "status", scalars(raw.status, ["lastScheduleTime"]));
}

function templateLabels(template: unknown): Json | undefined {
  const labels = stringMap(record(record(template)?.metadata)?.labels);
  return labels === undefined ? undefined : { metadata: { labels } };
}
