/** Slim copies of the cluster context: Node, Service, EndpointSlice, Namespace. */
import {
  conditions,
  objectList,
  portList,
  put,
  record,
  scalarList,
  scalars,
  stringList,
  stringMap,
  type Json,
} from "./read.ts";

const NODE_SPEC_FIELDS = ["podCIDR", "providerID"] as const;
const NODE_ADDRESS_FIELDS = ["type", "address"] as const;
// kernelVersion and operatingSystem too: eBPF-based telemetry picks its probes by them.
const NODE_INFO_FIELDS = [
  "kubeletVersion",
  "containerRuntimeVersion",
  "osImage",
  "kernelVersion",
  "operatingSystem",
  "architecture",
] as const;
const READY = ["Ready"] as const;

/** The lists slimNode keeps only some items of (Ready alone): a rule's path through one adds nothing to them. */
export const NODE_PARTIAL_LISTS: ReadonlySet<string> = new Set(["status.conditions"]);

/**
 * Every kubelet rewrites its Node status every ~10 s (lastHeartbeatTime) and reports
 * images, capacity and volumes: none of it is kept, so a heartbeat is not an update.
 */
export function slimNode(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, NODE_SPEC_FIELDS);
  put(spec, "podCIDRs", stringList(rawSpec?.podCIDRs));
  put(into, "spec", spec);

  const rawStatus = record(raw.status);
  const status: Json = {};
  if (rawStatus !== undefined) {
    put(status, "addresses", scalarList(rawStatus.addresses, NODE_ADDRESS_FIELDS));
    put(status, "conditions", conditions(rawStatus.conditions, READY));
    put(status, "nodeInfo", scalars(rawStatus.nodeInfo, NODE_INFO_FIELDS));
  }
  put(into, "status", status);
}

const SERVICE_SPEC_FIELDS = ["type", "clusterIP", "externalName"] as const;
const SERVICE_PORT_FIELDS = ["name", "protocol", "port", "targetPort", "nodePort"] as const;
const INGRESS_FIELDS = ["ip", "hostname"] as const;

export function slimService(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, SERVICE_SPEC_FIELDS);
  if (rawSpec !== undefined) {
    put(spec, "clusterIPs", stringList(rawSpec.clusterIPs));
    put(spec, "externalIPs", stringList(rawSpec.externalIPs));
    put(spec, "ports", portList(rawSpec.ports, SERVICE_PORT_FIELDS));
    put(spec, "selector", stringMap(rawSpec.selector));
  }
  put(into, "spec", spec);

  const ingress = scalarList(record(record(raw.status)?.loadBalancer)?.ingress, INGRESS_FIELDS);
  if (ingress !== undefined) into.status = { loadBalancer: { ingress } };
}

const ENDPOINT_FIELDS = ["nodeName", "zone"] as const;
const TARGET_REF_FIELDS = ["kind", "namespace", "name", "uid"] as const;
const ENDPOINT_PORT_FIELDS = ["name", "protocol", "port"] as const;

/** Only `conditions.ready`: serving and terminating follow it during a rollout. */
export function slimEndpointSlice(raw: Json, into: Json): void {
  scalars(raw, ["addressType"], into);
  put(
    into,
    "endpoints",
    objectList(raw.endpoints, (item) => {
      const endpoint: Json = {};
      put(endpoint, "addresses", stringList(item.addresses));
      const ready = record(item.conditions)?.ready;
      if (typeof ready === "boolean") endpoint.conditions = { ready };
      scalars(item, ENDPOINT_FIELDS, endpoint);
      put(endpoint, "targetRef", scalars(item.targetRef, TARGET_REF_FIELDS));
      return endpoint;
    }),
  );
  put(into, "ports", portList(raw.ports, ENDPOINT_PORT_FIELDS));
}

export function slimNamespace(raw: Json, into: Json): void {
  put(into, "status", scalars(raw.status, ["phase"]));
}
