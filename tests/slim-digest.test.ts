/**
 * digest is what no-op suppression compares: stable across processes and list/watch, blind to churn, sensitive to real
 * changes.
 */
import { describe, expect, test } from "bun:test";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject } from "../sdk/model.ts";
import { fixture, listItems, watchEvents } from "./fixtures/k8s/load.ts";
import { REAL_NODE, REAL_POD } from "./slim-fixtures.ts";

/** The parts of a raw pod's status the change tests below rewrite. */
type RawPod = KubeObject & {
  status: {
    phase?: string;
    podIP?: string;
    conditions: { type: string; status: string }[];
    containerStatuses: { ready: boolean }[];
  };
};

function clone<T>(value: T): T {
  return structuredClone(value);
}

describe("digest", () => {
  test("is a non-negative safe integer, the same in every process (digests are persisted)", () => {
    const value = digest({ kind: "Pod", metadata: { name: "a" } });
    expect(Number.isSafeInteger(value) && value >= 0).toBe(true);
    expect(value).toBe(2117301313019823);
  });

  test("a listed object digests like the same object from a watch event", async () => {
    const listed = await listItems("real/kind-v1.36.2/core.v1.PodList.json");
    const events = await watchEvents("real/kind-v1.36.2/watch.core.v1.pods.ndjson");
    expect(events.length).toBeGreaterThan(0);
    for (const { object } of events) {
      const item = listed.find((pod) => pod.metadata?.uid === object.metadata?.uid)!;
      expect(item.metadata!.resourceVersion).toBe(object.metadata!.resourceVersion!);
      expect(item.kind).toBeUndefined();
      expect(digest(slim("Pod", item))).toBe(digest(slim("Pod", object)));
    }
  });

  test("Node heartbeats and pod writes that change nothing telemetry uses give the same digest", async () => {
    const node = await fixture(REAL_NODE);
    const heartbeat = clone(node);
    heartbeat.metadata!.resourceVersion = "500999";
    const nodeStatus = heartbeat.status as {
      conditions: { lastHeartbeatTime: string }[];
      allocatable: Record<string, string>;
    };
    for (const condition of nodeStatus.conditions) condition.lastHeartbeatTime = "2019-08-31T04:43:21Z";
    nodeStatus.allocatable.memory = "8063000Ki";
    expect(digest(slim("Node", heartbeat))).toBe(digest(slim("Node", node)));

    const pod = await fixture(REAL_POD);
    const rewritten = clone(pod);
    rewritten.metadata!.resourceVersion = "999";
    rewritten.metadata!.generation = 2;
    (rewritten.metadata!.managedFields as { time: string }[])[0]!.time = "2026-06-15T05:00:00Z";
    const podStatus = rewritten.status as { conditions: { lastTransitionTime: string }[]; observedGeneration: number };
    for (const condition of podStatus.conditions) condition.lastTransitionTime = "2026-06-15T05:00:00Z";
    podStatus.observedGeneration = 2;
    expect(digest(slim("Pod", rewritten))).toBe(digest(slim("Pod", pod)));
  });

  test("a waiting container's reason flapping is not an update; leaving waiting is", () => {
    const waiting = (reason: string, state = "waiting") => ({
      metadata: { name: "p", uid: "u" },
      status: {
        containerStatuses: [
          { name: "c", ready: false, state: { [state]: { reason, message: `Back-off pulling image (${reason})` } } },
        ],
      },
    });
    expect(digest(slim("Pod", waiting("ErrImagePull")))).toBe(digest(slim("Pod", waiting("ImagePullBackOff"))));
    expect(digest(slim("Pod", waiting("ImagePullBackOff")))).not.toBe(digest(slim("Pod", waiting("", "running"))));
  });

  test("map key order does not matter", async () => {
    const pod = await fixture(REAL_POD);
    const reordered = clone(pod);
    reordered.metadata!.labels = { "pod-template-hash": "589f44dc88", "k8s-app": "kube-dns" };
    expect(digest(slim("Pod", reordered))).toBe(digest(slim("Pod", pod)));
  });

  test("a label, phase, IP, readiness or deletion change gives another digest", async () => {
    const pod = await fixture(REAL_POD);
    const before = digest(slim("Pod", pod));
    const changes: ((raw: RawPod) => void)[] = [
      (raw) => ((raw.metadata!.labels as Record<string, string>)["k8s-app"] = "kube-dns-v2"),
      (raw) => (raw.status.phase = "Succeeded"),
      (raw) => (raw.status.podIP = "10.244.0.4"),
      (raw) => (raw.status.conditions.find((c) => c.type === "Ready")!.status = "False"),
      (raw) => (raw.status.containerStatuses[0]!.ready = false),
      (raw) => (raw.metadata!.deletionTimestamp = "2026-06-15T06:00:00Z"),
    ];
    const digests = new Set([before]);
    for (const change of changes) {
      const changed = clone(pod) as RawPod;
      change(changed);
      digests.add(digest(slim("Pod", changed)));
    }
    expect(digests.size).toBe(changes.length + 1);
  });
});
