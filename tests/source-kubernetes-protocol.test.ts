/**
 * The kubernetes source's list/watch protocol against the test API server: streaming
 * list, paginated fallback, resume without LIST, relist on 410, expired continue tokens.
 */
import { describe, expect, test } from "bun:test";
import { makePod } from "../simulator/population.ts";
import { count, inSync, RecordingSink, until, withCluster, within } from "./source-kubernetes-recorder.ts";
import { RESUME_SETTLE_MS } from "../plugins/sources/kubernetes/watch.ts";

const newPod = (name: string) =>
  makePod({ name, namespace: "default", node: "ip-10-0-0-1.eu-west-1.compute.internal" });
const forty = { nodes: 4, podsPerNode: 10 };

describe("initial state", () => {
  test(
    "streaming list: state inside one relist ended at the initial-events-end bookmark, " + "no LIST, then live events",
    () =>
      withCluster(async ({ server, start }) => {
        const sink = new RecordingSink();
        const running = await start(sink, { resources: ["pods", "nodes"] });
        await within(running.synced, 5000, "sync");
        expect(server.requests()["list pods"]).toBeUndefined();
        expect(inSync(sink, server, "Pod")).toBe(true);
        const podRelists = sink.relists.filter((r) => r.kind === "Pod");
        expect(podRelists.map((r) => r.state)).toEqual(["ended"]);
        expect(sink.events.filter((e) => e.kind === "Pod").every((e) => e.via === "relist" && e.type === "ADDED")).toBe(
          true,
        );

        const created = server.create(newPod("live-1"));
        server.patch("Pod", "default", "live-1", (pod) => {
          pod.metadata!.labels = { changed: "yes" };
        });
        server.delete("Pod", "default", "live-1");
        await until(() => sink.events.some((e) => e.name === "live-1" && e.type === "DELETED"), "the live DELETED");
        const live = sink.events.filter((e) => e.name === "live-1");
        expect(live.map((e) => `${e.type}/${e.via}`)).toEqual(["ADDED/watch", "MODIFIED/watch", "DELETED/watch"]);
        expect(live[0]!.uid).toBe(created.metadata!.uid!);
        // Outside a relist the resume point follows the events, then the bookmarks.
        await until(() => sink.bookmarks.some((b) => b.resource === "kubernetes/core/v1/pods"), "a bookmark");
        expect(count(running.metrics, "kubemeta_source_events_total", { resource: "pods", type: "MODIFIED" })).toBe(1);
        expect(sink.violations).toEqual([]);
      }),
  );

  test(
    "paginated fallback when the server refuses streaming lists: " +
      "pages, kinds set on items, then watch from the list's resourceVersion",
    () =>
      withCluster(
        async ({ server, start }) => {
          const sink = new RecordingSink();
          // Three tokens (the streaming list refused, the list, the watch after it), then one every ten seconds: were
          // the pages charged to the budget, the six would take forty seconds.
          const running = await start(sink, { pageSize: 7, requestBudget: { qps: 0.1, burst: 3 } });
          await within(running.synced, 3000, "sync");
          expect(server.requests()["list pods"]).toBe(Math.ceil(40 / 7));
          expect(inSync(sink, server, "Pod")).toBe(true);
          // List items come without kind/apiVersion; the recorder flags any apply that lacks them.
          expect(sink.violations).toEqual([]);
          expect(sink.relists.map((r) => r.state)).toEqual(["ended"]);

          server.create(newPod("after-list"));
          await until(
            () => sink.events.some((e) => e.name === "after-list" && e.via === "watch"),
            "the ADDED after the list",
          );
          expect(inSync(sink, server, "Pod")).toBe(true);
        },
        { streamingList: false },
        forty,
      ),
  );

  test("streamingList: never takes the initial state with LIST even where streaming lists are served", () =>
    withCluster(async ({ server, start }) => {
      const sink = new RecordingSink();
      const running = await start(sink, { streamingList: "never" });
      await within(running.synced, 5000, "sync");
      expect(server.requests()["list pods"]).toBe(1);
      expect(inSync(sink, server, "Pod")).toBe(true);
    }));

  test("namespace scopes namespaced resources only; a label selector applies to every resource", () =>
    withCluster(async ({ server, start }) => {
      server.create(makePod({ name: "picked", namespace: "default", node: "n1", labels: { team: "a" } }));
      server.create(makePod({ name: "other-team", namespace: "default", node: "n1", labels: { team: "b" } }));
      server.create(makePod({ name: "other-namespace", namespace: "kube-system", node: "n1", labels: { team: "a" } }));
      const sink = new RecordingSink();
      const running = await start(sink, {
        resources: ["pods", "nodes", "namespaces"],
        namespace: "default",
        labelSelector: "team=a",
      });
      await within(running.synced, 5000, "sync");
      expect([...sink.state("Pod").keys()]).toEqual([server.get("Pod", "default", "picked")!.metadata!.uid!]);
      expect(sink.state("Node").size).toBe(0);
      // Nodes are cluster-scoped: `namespace` does not apply to them.
      const nodeSink = new RecordingSink();
      const nodes = await start(nodeSink, { resources: ["nodes"], namespace: "default" });
      await within(nodes.synced, 5000, "sync of nodes");
      expect(inSync(nodeSink, server, "Node")).toBe(true);
      expect([...sink.resumePoints.keys()].sort()).toEqual([
        "kubernetes/core/v1/namespaces?labelSelector=team%3Da",
        "kubernetes/core/v1/nodes?labelSelector=team%3Da",
        "kubernetes/core/v1/pods?labelSelector=team%3Da&namespace=default",
      ]);
    }));

  test("a field a resource does not support (the API server's 400): its reason names the fieldSelector", () =>
    withCluster(async ({ start }) => {
      const running = await start(new RecordingSink(), {
        resources: ["pods", "nodes"],
        labelSelector: "team=a",
        fieldSelector: "spec.nodeName=n1",
      });
      await until(() => /^nodes: list[^;]*$/.test(running.waiting() ?? ""), "the reason of nodes alone");
      expect(running.waiting()).toBe(
        "nodes: list/watch failing, retrying: 400 BadRequest: field label not supported: spec.nodeName " +
          '(the source\'s fieldSelector "spec.nodeName=n1" names a field this resource does not support)',
      );
    }));

  test("RBAC missing for one resource (a 403 on it alone): its reason says which role to apply, the rest sync", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ resource: "pods", status: 403, count: 1_000 });
      const running = await start(new RecordingSink(), { resources: ["pods", "nodes"] });
      await until(() => /^pods: list[^;]*$/.test(running.waiting() ?? ""), "the reason of pods alone");
      expect(running.waiting()).toBe(
        "pods: list/watch failing, retrying: 403 Forbidden: pods is forbidden: User " +
          '"system:serviceaccount:kubemeta:kubemeta" cannot watch resource "pods" in API group "" at the cluster ' +
          "scope (kubemeta's role lacks this resource: apply the one `main.ts rbac` prints for this config)",
      );
    }));

  test("an expired continue token mid-list restarts the list, with no false deletions", () =>
    withCluster(
      async ({ server, start }) => {
        const sink = new RecordingSink();
        let release = () => {};
        let gateReached = false;
        sink.onApply = (n) => {
          if (n !== 15) return;
          gateReached = true;
          return new Promise<void>((resolve) => (release = resolve));
        };
        const running = await start(sink, { pageSize: 10 });
        await until(() => gateReached, "the second page to be applied");
        server.expireContinueTokens();
        release();
        await within(running.synced, 5000, "sync");
        expect(sink.relists.map((r) => r.state)).toEqual(["aborted", "ended"]);
        expect(sink.events.some((e) => e.via === "relist-end")).toBe(false);
        expect(inSync(sink, server, "Pod")).toBe(true);
        expect(
          count(running.metrics, "kubemeta_source_requests_total", { verb: "list", resource: "pods", code: "410" }),
        ).toBe(1);
      },
      { streamingList: false },
      forty,
    ));
});

describe("resume and relist", () => {
  test("a restart resumes from the resourceVersion with zero LIST and no relist, and sees what changed meanwhile", () =>
    withCluster(async ({ server, start, syncAndStop }) => {
      const sink = new RecordingSink();
      await syncAndStop(sink);
      const [victim, changed] = server.names("Pod");
      server.delete("Pod", victim!.namespace, victim!.name);
      server.patch("Pod", changed!.namespace, changed!.name, (pod) => {
        pod.metadata!.labels = { changed: "yes" };
      });
      server.create(newPod("while-down"));
      server.resetRequests();
      const relistsBefore = sink.relists.length;

      const second = await start(sink);
      await within(second.synced, 5000, "resumed sync");
      await until(() => inSync(sink, server, "Pod"), "the changes made while down");
      expect(server.requests()).toEqual({ "watch pods": 1 });
      expect(sink.relists.length).toBe(relistsBefore);
      const resumed = sink.events.slice(-3).map((e) => `${e.type} ${e.name} ${e.via}`);
      expect(resumed).toEqual([
        `DELETED ${victim!.name} watch`,
        `MODIFIED ${changed!.name} watch`,
        "ADDED while-down watch",
      ]);
    }));

  for (const as of ["event", "status"] as const) {
    test(
      `410 Gone as ${as === "event" ? "an ERROR event" : "an HTTP status"} relists, ` +
        "and the relist reports what vanished",
      () =>
        withCluster(async ({ server, start, syncAndStop }) => {
          const sink = new RecordingSink();
          await syncAndStop(sink);
          const [gone] = server.names("Pod");
          server.delete("Pod", gone!.namespace, gone!.name);
          server.failNext({ verb: "watch", resource: "pods", status: 410, as });

          const second = await start(sink);
          await until(() => sink.relists.length === 2 && sink.relists[1]!.state === "ended", "the relist");
          expect(inSync(sink, server, "Pod")).toBe(true);
          const vanished = sink.events.filter((e) => e.via === "relist-end");
          expect(vanished.map((e) => `${e.type} ${e.name}`)).toEqual([`DELETED ${gone!.name}`]);
          expect(
            count(second.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "expired" }),
          ).toBe(1);
          expect(count(second.metrics, "kubemeta_source_relists_total", { resource: "pods" })).toBe(1);
          expect(sink.violations).toEqual([]);
        }),
    );
  }

  test("a resume point the server no longer has is not synced until the relist after its 410 ends", () =>
    withCluster(async ({ server, start, syncAndStop }) => {
      const sink = new RecordingSink();
      await syncAndStop(sink);
      // As kube-apiserver: HTTP 200, then an ERROR event with 410 Expired; then the relist's first attempts fail.
      server.failNext({ verb: "watch", resource: "pods", status: 410, as: "event" });
      server.failNext({ verb: "watch", resource: "pods", status: 503, count: 3 });

      const second = await start(sink);
      await within(second.synced, 5000, "the sync after the relist");
      expect(sink.relists.map((r) => r.state)).toEqual(["ended", "ended"]);
      expect(
        count(second.metrics, "kubemeta_source_requests_total", { verb: "watch", resource: "pods", code: "503" }),
      ).toBe(3);
      expect(inSync(sink, server, "Pod")).toBe(true);
    }));

  test("a resumed watch with nothing to say counts as synced once it stayed open without an ERROR", () =>
    withCluster(
      async ({ server, start, syncAndStop }) => {
        const sink = new RecordingSink();
        await syncAndStop(sink);
        server.resetRequests();
        const opened = performance.now();
        const second = await start(sink);
        await within(second.synced, 5000, "the resumed sync");
        expect(performance.now() - opened).toBeGreaterThanOrEqual(RESUME_SETTLE_MS);
        expect(server.requests()).toEqual({ "watch pods": 1 });
        expect(sink.relists.length).toBe(1);
      },
      { bookmarkIntervalMs: 60_000 },
    ));

  test(
    "a resourceVersion newer than the server's (a restored store, another cluster's store) " +
      "relists instead of retrying forever",
    () =>
      withCluster(async ({ server, start }) => {
        const sink = new RecordingSink();
        sink.resumePoints.set("kubernetes/core/v1/pods", String(Number(server.resourceVersion()) + 1000));
        const running = await start(sink);
        await within(running.synced, 5000, "sync");
        await until(() => sink.relists.some((r) => r.state === "ended"), "the relist");
        expect(inSync(sink, server, "Pod")).toBe(true);
        expect(
          count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "too-large" }),
        ).toBe(1);
      }),
  );

  test("a resourceVersion older than the server's history (compaction) relists", () =>
    withCluster(async ({ server, start, syncAndStop }) => {
      const sink = new RecordingSink();
      await syncAndStop(sink);
      server.create(newPod("after-compaction"));
      server.compact();
      await start(sink);
      await until(() => sink.relists.length === 2 && sink.relists[1]!.state === "ended", "the relist");
      expect(inSync(sink, server, "Pod")).toBe(true);
      expect(sink.events.some((e) => e.name === "after-compaction")).toBe(true);
    }));
});
