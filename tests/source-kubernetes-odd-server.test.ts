/**
 * An API server (or a proxy in front of it) that sends what kube-apiserver never does, through a front of the test
 * API server: a watch event of a type not known. Nothing of it wedges a resource: such an event is skipped and
 * counted, and the watch goes on.
 */
import { expect, test } from "bun:test";
import { count, inSync, RecordingSink, within } from "./source-kubernetes-recorder.ts";
import { behindFront, leading } from "./source-kubernetes-front.ts";
import { makePod } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";

test("a watch event of a type not known is skipped and counted, and the watch goes on", () =>
  behindFront(
    // What a later API version or a proxy might send, at the start of every resumed watch.
    leading(JSON.stringify({ type: "RESYNC", object: { kind: "Pod", metadata: { resourceVersion: "1" } } })),
    async ({ server, start }, through, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig });
      await within(running.synced, 5000, "the first sync");
      server.dropWatches();
      server.create(makePod({ name: "after-unknown", namespace: "default", node: "n-1" }));
      await within(
        waitFor(() => inSync(sink, server, "Pod"), 5_000),
        5_000,
        "the pod on the watch that began with it",
      );
      const rejected = { reason: "unknown_event_type" };
      expect(count(running.metrics, "kubemeta_changes_rejected_total", rejected)).toBe(1);
      // The watch that began with it is the one that delivered the pod: one resumed watch, still open.
      const resumed = through.requests.filter((r) => r.startsWith("/api/v1/pods?") && r.includes("resourceVersion="));
      expect(resumed).toHaveLength(1);
    },
  ));
