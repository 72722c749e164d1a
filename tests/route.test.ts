import { describe, expect, test } from "bun:test";
import { slim } from "../core/slim.ts";
import { nodeOf, streamOf } from "../core/route.ts";
import { isStreamName } from "../protocol/streams.ts";
import type { KubeObject } from "../sdk/model.ts";
import { CANONICAL_FILES, fixture, realPods, watchEvents } from "./fixtures/k8s/load.ts";

/** Routes a raw object the way the core does: slim first, then route the slim copy. */
function route(kind: string, raw: KubeObject) {
  const slimObject = slim(kind, raw);
  return { stream: streamOf(kind, slimObject), node: nodeOf(kind, slimObject) };
}

describe("routing", () => {
  test("a scheduled Pod goes to its node's stream, dotted node names included", async () => {
    const pods = await realPods();
    expect(pods.length).toBeGreaterThan(0);
    for (const pod of pods) {
      const nodeName = (pod.spec as { nodeName: string }).nodeName;
      expect(route("Pod", pod)).toEqual({ stream: `node/${nodeName}`, node: nodeName });
      expect(isStreamName(`node/${nodeName}`)).toBe(true);
    }
    expect(pods.map((pod) => route("Pod", pod).node)).toContain("dell-r430-20.example.com");
    expect(route("Pod", await fixture("real/kind-v1.36.2/core.v1.Pod.json")).stream).toBe("node/v1.36-control-plane");
  });

  test("an unscheduled Pod is in `all` only, and moves to its node once bound", async () => {
    const pod = await fixture("real/kind-v1.36.2/core.v1.Pod.json");
    const pending = structuredClone(pod);
    delete (pending.spec as { nodeName?: string }).nodeName;
    expect(route("Pod", pending)).toEqual({ stream: null, node: null });
    (pending.spec as { nodeName: string }).nodeName = "";
    expect(route("Pod", pending)).toEqual({ stream: null, node: null });
    expect(route("Pod", { metadata: { name: "tombstone", uid: "u" } })).toEqual({ stream: null, node: null });
    expect(route("Pod", pod).stream).toBe("node/v1.36-control-plane");
  });

  test("a Node goes to its own stream", async () => {
    expect(route("Node", await fixture("real/minikube-v1.15.2-2019/core.v1.Node.json"))).toEqual({
      stream: "node/minikube",
      node: "minikube",
    });
    const name = "ip-10-0-1-23.eu-west-1.compute.internal";
    expect(route("Node", { metadata: { name, uid: "n-1" } })).toEqual({ stream: `node/${name}`, node: name });
    expect(route("Node", { metadata: { uid: "nameless" } })).toEqual({ stream: null, node: null });
  });

  test("cluster context and every other kind go to `shared`, bound to no node", async () => {
    for (const file of CANONICAL_FILES) {
      const raw = await fixture(file);
      if (raw.kind === "Pod" || raw.kind === "Node") continue;
      // The canonical EndpointSlice names a node in its endpoints: still cluster context.
      expect(route(raw.kind!, raw)).toEqual({ stream: "shared", node: null });
    }
    for (const kind of ["CronJob", "Secret", "Gateway", "HTTPRoute"])
      expect(route(kind, { metadata: { name: "x", uid: "u" } })).toEqual({ stream: "shared", node: null });
    const [fooBar] = await watchEvents("real/kind-v1.36.2/watch.cr.foobars.ndjson");
    expect(route("FooBar", fooBar!.object)).toEqual({ stream: "shared", node: null });
  });
});
