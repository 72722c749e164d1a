/**
 * Simulated pods and nodes are the size of real ones, with managedFields the same share of their bytes: benchmarks
 * parse, skim and slim what a real API server sends, not a lighter stand-in. Compared with the kind v1.36.2 captures
 * (tests/fixtures/k8s/real/, SOURCES.md there).
 */
import { describe, expect, test } from "bun:test";
import type { KubeObject } from "../sdk/model.ts";
import { makePod } from "../simulator/pods.ts";
import { makeNode, nodeName } from "../simulator/nodes.ts";
import { realFixture } from "./apiserver-client.ts";

type Managed = { manager: string; subresource?: string; fieldsV1: Record<string, unknown> };

function sizes(object: KubeObject): { bytes: number; managedShare: number } {
  const bytes = JSON.stringify(object).length;
  const managed = JSON.stringify(object.metadata!.managedFields ?? []).length;
  return { bytes, managedShare: managed / bytes };
}

const managedFields = (object: KubeObject) => object.metadata!.managedFields as Managed[];

const replicaSetPod = () =>
  makePod({
    name: "web-7d9f8c6b5-x2x9q",
    namespace: "payments",
    node: nodeName(3),
    owner: { kind: "ReplicaSet", name: "web-7d9f8c6b5", uid: "6f1c2a4e-0b8d-4c51-9e2f-3a7d5b9c1e08" },
    labels: { app: "web", "pod-template-hash": "7d9f8c6b5" },
  });

describe("simulated objects are real-size", () => {
  test("a running pod is within the kind captures' sizes (6.9–9.9 KB) and managedFields share (33–44 %)", async () => {
    const real = (await realFixture<{ items: KubeObject[] }>("kind-v1.36.2/core.v1.PodList.json")).items.map(sizes);
    const low = Math.min(...real.map((r) => r.bytes));
    const high = Math.max(...real.map((r) => r.bytes));
    expect(low).toBeGreaterThan(6000); // the range claimed here is the captures' own
    expect(high).toBeLessThan(10_000);
    for (const made of [replicaSetPod(), makePod({ name: "bare", namespace: "default", node: nodeName(1) })]) {
      const { bytes, managedShare } = sizes(made);
      expect(bytes).toBeGreaterThanOrEqual(low);
      expect(bytes).toBeLessThanOrEqual(high);
      expect(managedShare).toBeGreaterThanOrEqual(0.33);
      expect(managedShare).toBeLessThanOrEqual(0.44);
    }
    const mean = real.reduce((sum, r) => sum + r.managedShare, 0) / real.length;
    expect(Math.abs(sizes(replicaSetPod()).managedShare - mean)).toBeLessThan(0.05);
  });

  test("a pod's managedFields name its own fields, per manager, as the captures do", async () => {
    const real = await realFixture<KubeObject>("kind-v1.36.2/core.v1.Pod.json");
    const made = replicaSetPod();
    const [creator, kubelet] = managedFields(made);
    expect(managedFields(made).map((m) => `${m.manager}/${m.subresource ?? ""}`)).toEqual([
      "kube-controller-manager/",
      "kubelet/status",
    ]);
    expect(Object.keys(managedFields(made)[0]!)).toEqual(Object.keys(managedFields(real)[0]!));
    expect(Object.keys(kubelet!)).toEqual(Object.keys(managedFields(real)[2]!));
    // Keyed list items as the API server writes them, and every container field the creator sent.
    const spec = creator!.fieldsV1["f:spec"] as Record<string, Record<string, Record<string, unknown>>>;
    const container = spec["f:containers"]!['k:{"name":"app"}']!;
    const sent = (made.spec as { containers: Array<Record<string, unknown>> }).containers[0]!;
    expect(Object.keys(container).toSorted()).toEqual([".", ...Object.keys(sent).map((k) => `f:${k}`)].toSorted());
    expect(container["f:ports"]).toHaveProperty(['k:{"containerPort":8080,"protocol":"TCP"}', "f:containerPort"]);
    expect(spec["f:nodeName"]).toBeUndefined(); // the scheduler's binding, not the controller's
    const status = kubelet!.fieldsV1["f:status"] as Record<string, Record<string, unknown>>;
    expect(Object.keys(status["f:conditions"]!)).toContain('k:{"type":"Ready"}');
    expect(Object.keys(status["f:podIPs"]!)).toHaveLength(2); // "." and the one pod IP
  });

  test("an unscheduled pod has the scheduler's status entry, not the kubelet's", () => {
    const pending = makePod({ name: "pending", namespace: "default" });
    expect(managedFields(pending).map((m) => m.manager)).toEqual(["kubectl-client-side-apply", "kube-scheduler"]);
    expect(sizes(pending).managedShare).toBeGreaterThan(0.3);
  });

  test("a node is 5–9 KB with managedFields about a third of it", async () => {
    // The only real Node capture predates managedFields (v1.15): its size without them is the floor.
    const real = sizes(await realFixture<KubeObject>("minikube-v1.15.2-2019/core.v1.Node.json"));
    const node = makeNode(nodeName(7));
    const { bytes, managedShare } = sizes(node);
    expect(bytes * (1 - managedShare)).toBeGreaterThan(real.bytes * 0.9);
    expect(bytes).toBeLessThan(9000);
    expect(managedShare).toBeGreaterThan(0.3);
    expect(managedShare).toBeLessThan(0.45);
    expect(managedFields(node).map((m) => `${m.manager}/${m.subresource ?? ""}`)).toEqual([
      "kubelet/",
      "kube-controller-manager/",
      "kubelet/status",
    ]);
  });

  test("the same inputs give the same sizes and the same managedFields shape", () => {
    const a = replicaSetPod();
    const b = replicaSetPod();
    const shape = (object: KubeObject) =>
      JSON.stringify(managedFields(object).map((m) => m.fieldsV1)).replace(/10\.\d+\.\d+\.\d+/g, "IP");
    expect(shape(a)).toBe(shape(b));
    expect(Math.abs(sizes(a).bytes - sizes(b).bytes)).toBeLessThan(8); // only the counter-made pod IP differs
  });
});
