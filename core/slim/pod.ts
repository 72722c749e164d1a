/**
 * The slim Pod: where it runs, its addresses, its readiness and its containers.
 *
 * Left out on purpose, because they change without changing what telemetry attributes:
 * - condition timestamps (lastProbeTime, lastTransitionTime) and every condition but Ready;
 * - a container state's details (startedAt, reason, message, exitCode) and lastState:
 *   only the state key is kept, so a pod looping between ErrImagePull and ImagePullBackOff
 *   (one status write each time) yields no updates until it actually runs;
 * - `started`, resources, allocatedResources, volumeMounts, probes, env, command and args;
 * - podIPs / hostIPs when they only repeat podIP / hostIP (single-stack clusters).
 * restartCount is kept: it only moves when a container is replaced, and then its
 * containerID and state change in the same write anyway, so it costs no extra update.
 */
import { conditions, objectList, portList, put, record, scalarList, scalars, type Json } from "./read.ts";

const POD_SPEC_FIELDS = ["nodeName", "hostNetwork", "serviceAccountName"] as const;
const POD_STATUS_FIELDS = ["phase", "podIP", "hostIP", "qosClass", "startTime"] as const;
const CONTAINER_FIELDS = ["name", "image"] as const;
const CONTAINER_PORT_FIELDS = ["name", "containerPort", "protocol", "hostPort"] as const;
const CONTAINER_STATUS_FIELDS = ["name", "containerID", "imageID", "ready", "restartCount"] as const;
const CONTAINER_STATES = ["running", "waiting", "terminated"] as const;
const IP_FIELDS = ["ip"] as const;
const READY = ["Ready"] as const;

/** The lists slimPod keeps only some items of (Ready alone): a rule's path through one adds nothing to them. */
export const POD_PARTIAL_LISTS: ReadonlySet<string> = new Set(["status.conditions"]);

export function slimPod(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, POD_SPEC_FIELDS);
  if (rawSpec !== undefined) {
    put(spec, "initContainers", containers(rawSpec.initContainers));
    put(spec, "containers", containers(rawSpec.containers));
    put(spec, "ephemeralContainers", containers(rawSpec.ephemeralContainers));
  }
  put(into, "spec", spec);

  const rawStatus = record(raw.status);
  const status = scalars(rawStatus, POD_STATUS_FIELDS);
  if (rawStatus !== undefined) {
    put(status, "podIPs", extraIPs(rawStatus.podIPs, status.podIP));
    put(status, "hostIPs", extraIPs(rawStatus.hostIPs, status.hostIP));
    put(status, "conditions", conditions(rawStatus.conditions, READY));
    put(status, "initContainerStatuses", containerStatuses(rawStatus.initContainerStatuses));
    put(status, "containerStatuses", containerStatuses(rawStatus.containerStatuses));
    put(status, "ephemeralContainerStatuses", containerStatuses(rawStatus.ephemeralContainerStatuses));
  }
  put(into, "status", status);
}

function containers(value: unknown): Json[] | undefined {
  return objectList(value, (item) => {
    const container = scalars(item, CONTAINER_FIELDS);
    put(container, "ports", portList(item.ports, CONTAINER_PORT_FIELDS));
    return container;
  });
}

/** podIPs / hostIPs only when they say more than podIP / hostIP, i.e. on dual-stack clusters. */
function extraIPs(value: unknown, single: unknown): Json[] | undefined {
  const ips = scalarList(value, IP_FIELDS);
  return ips?.length === 1 && ips[0]?.ip === single ? undefined : ips;
}

function containerStatuses(value: unknown): Json[] | undefined {
  return objectList(value, (item) => {
    const status = scalars(item, CONTAINER_STATUS_FIELDS);
    const state = record(item.state);
    const current = state && CONTAINER_STATES.find((key) => record(state[key]) !== undefined);
    if (current !== undefined) status.state = { [current]: {} };
    return status;
  });
}
