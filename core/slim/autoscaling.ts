/**
 * The slim HorizontalPodAutoscaler (autoscaling/v2): what it scales, between which bounds,
 * on which metrics and targets, and the replica counts it decided. Left out: the metrics'
 * current values (status.currentMetrics, rewritten on every sync, ~15 s), label selectors of
 * metrics, behavior, conditions and lastScaleTime. An autoscaling/v1 one has a single metric,
 * its CPU target (spec.targetCPUUtilizationPercentage); its current value is left out likewise.
 */
import { objectList, put, record, scalars, type Json } from "./read.ts";

const SCALE_TARGET_FIELDS = ["apiVersion", "kind", "name"] as const;
const TARGET_FIELDS = ["type", "averageUtilization", "averageValue", "value"] as const;
const NAME = ["name"] as const;
const SPEC_FIELDS = ["minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"] as const;

/**
 * The field of each metric type: Resource and ContainerResource name a resource (cpu,
 * memory), Pods, Object and External a metric; Object also names the object it describes.
 */
const METRIC_SOURCES = ["resource", "containerResource", "pods", "object", "external"] as const;

export function slimHorizontalPodAutoscaler(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, SPEC_FIELDS);
  if (rawSpec !== undefined) {
    put(spec, "scaleTargetRef", scalars(rawSpec.scaleTargetRef, SCALE_TARGET_FIELDS));
    put(spec, "metrics", objectList(rawSpec.metrics, metric));
  }
  put(into, "spec", spec);
  put(into, "status", scalars(raw.status, ["currentReplicas", "desiredReplicas"]));
}

function metric(item: Json): Json {
  const result = scalars(item, ["type"]);
  for (const field of METRIC_SOURCES) {
    const from = record(item[field]);
    if (from === undefined) continue;
    const source = scalars(from, field === "containerResource" ? ["name", "container"] : NAME);
    put(source, "describedObject", scalars(from.describedObject, SCALE_TARGET_FIELDS));
    put(source, "metric", scalars(from.metric, NAME));
    put(source, "target", scalars(from.target, TARGET_FIELDS));
    put(result, field, source);
  }
  return result;
}
