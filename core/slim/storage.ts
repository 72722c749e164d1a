/**
 * The slim PersistentVolumeClaim: which class and volume back it, how it may be mounted, what
 * it asked for and what it got. Left out: selectors, dataSource, status conditions and the
 * resize bookkeeping (allocatedResources, allocatedResourceStatuses).
 */
import { put, record, scalars, stringList, stringMap, type Json } from "./read.ts";

export function slimPersistentVolumeClaim(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, ["storageClassName", "volumeName"]);
  if (rawSpec !== undefined) {
    put(spec, "accessModes", stringList(rawSpec.accessModes));
    const storage = scalars(record(record(rawSpec.resources)?.requests), ["storage"]);
    if (storage.storage !== undefined) spec.resources = { requests: storage };
  }
  put(into, "spec", spec);

  const rawStatus = record(raw.status);
  const status = scalars(rawStatus, ["phase"]);
  put(status, "capacity", stringMap(rawStatus?.capacity));
  put(into, "status", status);
}
