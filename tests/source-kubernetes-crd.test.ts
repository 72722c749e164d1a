/**
 * Resources by group/version/resource: found through API discovery, watched exactly like the
 * built-ins (streaming list, LIST, resume, 410 relist), and waited for, with /readyz saying
 * why, while the API server does not serve them (a CRD not installed yet). Against the
 * wire-faithful test API server; the source alone, and in a real host with its store.
 */
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { ConfigError, resolveConfig } from "../host/config.ts";
import kubernetes from "../plugins/sources/kubernetes.ts";
import { groupResources } from "../plugins/sources/kubernetes/resources.ts";
import { builtins } from "../plugins/index.ts";
import type { KubeObject } from "../sdk/model.ts";
import { GATEWAY_API } from "../simulator/index.ts";
import { startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { inSync, RecordingSink, until, withCluster, within } from "./source-kubernetes-recorder.ts";
import {
  discoveries,
  FAST_DISCOVERY,
  FOOBARS,
  fooBar,
  GROUP,
  GVR,
  NOT_SERVED,
  readiness,
  ready,
  loggedNames,
  storedNames,
  updatesAfter,
  withServer,
} from "./source-kubernetes-crd-fixtures.ts";

describe("the source alone", () => {
  test("a custom resource by group/version/resource: one discovery, a streaming list, then live events", () =>
    withCluster(async ({ server, start }) => {
      server.installResource(FOOBARS);
      for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
      const sink = new RecordingSink();
      const running = await start(sink, { resources: ["pods", GVR] });
      await within(running.synced, 5000, "sync");
      expect(inSync(sink, server, "FooBar")).toBe(true);
      expect(sink.relists.find((r) => r.kind === "FooBar")?.state).toBe("ended");
      const requests = server.requests();
      expect(discoveries(server)).toBe(1);
      expect(requests["discovery /api/v1"]).toBeUndefined(); // pods: a built-in needs none
      expect(requests["watchlist foobars"]).toBe(1);
      expect(requests["list foobars"]).toBeUndefined();

      server.create(fooBar("fb3"));
      server.patch("FooBar", "default", "fb1", (object) => {
        (object.spec as Record<string, unknown>).prop1 = "value2";
      });
      server.delete("FooBar", "default", "fb2");
      await until(() => sink.events.some((e) => e.name === "fb2" && e.type === "DELETED"), "the live DELETED");
      expect(sink.events.filter((e) => e.via === "watch").map((e) => `${e.type} ${e.name}`)).toEqual([
        "ADDED fb3",
        "MODIFIED fb1",
        "DELETED fb2",
      ]);
      expect(sink.resumePoints.get(`kubernetes/${GVR}`)).toBe(server.resourceVersion());
      expect(sink.violations).toEqual([]);
    }));

  test("where streaming lists are refused, a paginated LIST of its items (which keep their kind)", () =>
    withCluster(
      async ({ server, start }) => {
        server.installResource(FOOBARS);
        for (let i = 0; i < 5; i++) server.create(fooBar(`fb${i}`));
        const sink = new RecordingSink();
        const running = await start(sink, { resources: [GVR], pageSize: 2 });
        await within(running.synced, 5000, "sync");
        expect(server.requests()["list foobars"]).toBe(3);
        expect(inSync(sink, server, "FooBar")).toBe(true);
        expect(sink.violations).toEqual([]);
      },
      { streamingList: false },
    ));

  test("410 on its watch relists it, and the relist deletes what vanished", () =>
    withCluster(async ({ server, start }) => {
      server.installResource(FOOBARS);
      for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
      const sink = new RecordingSink();
      const running = await start(sink, { resources: [GVR] });
      await within(running.synced, 5000, "sync");
      server.failNext({ verb: "watch", resource: "foobars", status: 410 });
      server.stallWatches(true);
      server.delete("FooBar", "default", "fb2");
      server.dropWatches();
      server.stallWatches(false);
      await until(() => sink.relists.filter((r) => r.kind === "FooBar" && r.state === "ended").length === 2, "relist");
      expect(sink.events.filter((e) => e.via === "relist-end").map((e) => `${e.type} ${e.name}`)).toEqual([
        "DELETED fb2",
      ]);
      expect(inSync(sink, server, "FooBar")).toBe(true);
    }));

  test("a resource served without list and watch (an aggregated API's) is waited for, /readyz saying so", () =>
    withCluster(async ({ server, start }) => {
      const metrics = { group: "metrics.k8s.io", version: "v1beta1", resource: "pods", kind: "PodMetrics" };
      server.installResource({ ...metrics, namespaced: true, verbs: ["get", "list"] });
      const sink = new RecordingSink();
      const running = await start(sink, { resources: ["metrics.k8s.io/v1beta1/pods"], ...FAST_DISCOVERY });
      await until(
        () => running.waiting() === "waiting for metrics.k8s.io/v1beta1/pods (served without list and watch)",
        "the source to wait, saying why",
      );
      expect(server.requests()).not.toHaveProperty("watch pods");
      expect(sink.events).toEqual([]);
    }));

  test("its CRD deleted while watched: back to waiting (not an error loop), and picked up when installed again", () =>
    withCluster(async ({ server, start }) => {
      server.installResource(FOOBARS);
      server.create(fooBar("fb1"));
      const sink = new RecordingSink();
      const running = await start(sink, { resources: [GVR], ...FAST_DISCOVERY });
      await within(running.synced, 5000, "sync");

      server.uninstallResource(GROUP, "v1", "foobars");
      await until(() => running.waiting() === NOT_SERVED, "the source to wait for the resource again");
      expect(sink.events.map((e) => `${e.type} ${e.name}`)).toEqual(["ADDED fb1", "DELETED fb1"]);

      server.installResource(FOOBARS);
      server.create(fooBar("fb2"));
      await until(() => sink.events.some((e) => e.name === "fb2"), "the resource to be picked up again", 5000);
      expect(running.waiting()).toBeUndefined();
      expect(inSync(sink, server, "FooBar")).toBe(true);
    }));

  test(
    "ingresses, horizontalpodautoscalers and persistentvolumeclaims by name, with no discovery; " +
      "gateways and httproutes waited for until the Gateway API is installed",
    () =>
      withCluster(async ({ server, start }) => {
        const named: KubeObject[] = [
          { kind: "Ingress", apiVersion: "networking.k8s.io/v1" },
          { kind: "HorizontalPodAutoscaler", apiVersion: "autoscaling/v2" },
          { kind: "PersistentVolumeClaim", apiVersion: "v1" },
        ];
        for (const object of named) server.create({ ...object, metadata: { name: "web", namespace: "default" } });
        const sink = new RecordingSink();
        const resources = ["ingresses", "horizontalpodautoscalers", "persistentvolumeclaims", "gateways", "httproutes"];
        const running = await start(sink, { resources, ...FAST_DISCOVERY });
        const gateways = "gateway.networking.k8s.io/v1";
        const waiting =
          `waiting for ${gateways}/gateways (not served by the API server: is its CRD installed?), ` +
          `${gateways}/httproutes (not served by the API server: is its CRD installed?)`;
        await until(() => running.waiting() === waiting, "the source to wait for the Gateway API");
        await until(() => named.every((o) => inSync(sink, server, o.kind!)), "the named built-ins");
        expect(running.isSynced()).toBe(false);
        expect(Object.keys(server.requests()).filter((key) => key.startsWith("discovery"))).toEqual([
          `discovery /apis/${gateways}`,
        ]);

        for (const spec of GATEWAY_API) server.installResource(spec);
        server.create({
          kind: "HTTPRoute",
          apiVersion: `${gateways}`,
          metadata: { name: "web", namespace: "default" },
        });
        await within(running.synced, 5000, "sync once the Gateway API is installed");
        expect(running.waiting()).toBeUndefined();
        expect(inSync(sink, server, "HTTPRoute")).toBe(true);
        expect(sink.resumePoints.has("kubernetes/networking.k8s.io/v1/ingresses")).toBe(true);
        expect(sink.resumePoints.has("kubernetes/autoscaling/v2/horizontalpodautoscalers")).toBe(true);
      }),
  );
});

describe("in a host", () => {
  test(
    "a CRD installed after kubemeta started: /readyz says why it waits, discovery is asked at a bounded rate, " +
      "then the resource is picked up and kubemeta is ready",
    () =>
      withServer(async (server, source) => {
        server.create({ kind: "Namespace", apiVersion: "v1", metadata: { name: "default" } });
        const host = await startTestHost({ extra: { sources: [source(["namespaces", GVR])] } });
        try {
          await waitFor(async () => (await readiness(host)).waiting.includes(`source kubernetes: ${NOT_SERVED}`));
          expect((await readiness(host)).status).toBe(503);
          // The built-in is watched meanwhile; the missing resource holds back readiness (and /v1/objects) only.
          await waitFor(async () => (await loggedNames(host, "Namespace")).includes("default"));

          // Not an error loop: each look waits at least half the interval (100, then 200 ms).
          const before = discoveries(server);
          const started = performance.now();
          await waitFor(() => discoveries(server) >= before + 4, 5000, "four more discoveries");
          expect(performance.now() - started).toBeGreaterThanOrEqual(100 + 200 + 200);
          expect(server.requests()["watchlist foobars"]).toBeUndefined();

          server.installResource(FOOBARS);
          server.create(fooBar("fb1"));
          await waitFor(async () => (await readiness(host)).status === 200, 5000, "ready once the CRD is installed");
          expect((await readiness(host)).waiting).toEqual([]);
          expect(await storedNames(host, "FooBar")).toEqual(["fb1"]);
          server.create(fooBar("fb2"));
          await waitFor(async () => (await storedNames(host, "FooBar")).length === 2, 5000, "the live ADDED");
        } finally {
          await host.destroy();
        }
      }),
    20_000,
  );

  test(
    "a restart resumes a custom resource without LIST; past the watch history (410) its relist diffs",
    () =>
      withServer(async (server, source) => {
        server.installResource(FOOBARS);
        for (const name of ["fb1", "fb2", "fb3"]) server.create(fooBar(name));
        const dir = await tempDir();
        const start = () => startTestHost({ dir, extra: { sources: [source([GVR])] } });
        let host = await start();
        try {
          await ready(host);
          expect(await storedNames(host, "FooBar")).toEqual(["fb1", "fb2", "fb3"]);
          let head = host.host.log.head();
          await host.stop();

          // Changes while kubemeta is down: a restart resumes the watch and gets exactly them, without LIST.
          server.create(fooBar("fb4"));
          // A label: the slim copy of a kind without slim rules keeps its metadata only.
          server.patch("FooBar", "default", "fb1", (object) => {
            object.metadata!.labels = { changed: "yes" };
          });
          server.delete("FooBar", "default", "fb2");
          server.resetRequests();
          host = await start();
          await ready(host);
          await waitFor(async () => (await storedNames(host, "FooBar")).join() === "fb1,fb3,fb4", 5000, "the changes");
          expect(await updatesAfter(host, head)).toEqual([
            "ADDED FooBar fb4",
            "MODIFIED FooBar fb1",
            "DELETED FooBar fb2",
          ]);
          const requests = server.requests();
          expect(requests["list foobars"]).toBeUndefined();
          expect(requests["watchlist foobars"]).toBeUndefined();
          expect(requests["watch foobars"]).toBeGreaterThanOrEqual(1);
          head = host.host.log.head();
          await host.stop();

          // Past the history: 410, a relist, and of it only the true difference.
          server.delete("FooBar", "default", "fb3");
          server.compact();
          server.resetRequests();
          host = await start();
          await ready(host);
          await waitFor(async () => (await storedNames(host, "FooBar")).join() === "fb1,fb4", 5000, "the relist");
          expect(await updatesAfter(host, head)).toEqual(["DELETED FooBar fb3"]);
          expect(server.requests()["watchlist foobars"]).toBe(1);
        } finally {
          await host.destroy();
        }
      }),
    20_000,
  );
});

describe("config", () => {
  const resolve = (resources: unknown) =>
    resolveConfig({ sources: [{ type: "kubernetes", resources }] }, { baseDir: ".", registry: builtins });
  const problems = async (resources: unknown) => {
    try {
      await resolve(resources);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
    throw new Error("the config was accepted");
  };

  test("group/version/resource is accepted; a built-in written so is its name; the default is the eleven", async () => {
    const config = await resolve([
      "pods",
      "v1/pods",
      "apps/v1/deployments",
      "v1/persistentvolumeclaims",
      "networking.k8s.io/v1/ingresses",
      "argoproj.io/v1alpha1/rollouts",
      "gateway.networking.k8s.io/v1/gateways",
      "v1/configmaps",
    ]);
    expect((config.sources[0]!.config as { resources: string[] }).resources).toEqual([
      "pods",
      "deployments",
      "persistentvolumeclaims",
      "ingresses",
      "argoproj.io/v1alpha1/rollouts",
      "gateways",
      "v1/configmaps",
    ]);
    expect(v.parse(kubernetes.schema, {}).resources).toHaveLength(11);
    expect(v.parse(kubernetes.schema, {}).resources).not.toContain("gateways");
  });

  test("a bad group/version/resource is an error that names its path and says what is wrong", async () => {
    const cases: Array<[string, string]> = [
      ["argoproj/v1alpha1/rollouts", '"argoproj" is not an API group: a group is a domain with a dot'],
      ["core/v1/pods", "the core group is written v1/<resource>"],
      ["argoproj.io/rollouts", "is not group/version/resource"],
      ["v2/pods", "is not group/version/resource"],
      ["argoproj.io/v1alpha1/rollouts/status", "is not group/version/resource"],
      ["argoproj.io/1/rollouts", '"1" is not an API version'],
      ["argoproj.io/v1alpha1/Rollout", '"Rollout" is not a resource: its plural in lower case'],
      ["argoproj.io//rollouts", '"" is not an API version'],
      ["rollouts", 'unknown resource "rollouts": name one of pods, nodes'],
    ];
    for (const [entry, message] of cases) {
      const issues = await problems(["pods", entry]);
      expect(issues).toHaveLength(1);
      expect(issues[0]!.path).toBe("sources[0].resources[1]");
      expect(issues[0]!.message).toContain(message);
    }
    const twice = await problems(["horizontalpodautoscalers", "autoscaling/v1/horizontalpodautoscalers"]);
    expect(twice).toEqual([
      {
        path: "sources[0].resources",
        message:
          "horizontalpodautoscalers and autoscaling/v1/horizontalpodautoscalers are one resource: list one version",
      },
    ]);
  });

  test("groupResources: the API group and plural of each resource, once each (what an RBAC rule names)", () => {
    expect(groupResources(["pods", "v1/pods", "deployments", "argoproj.io/v1alpha1/rollouts", "gateways"])).toEqual([
      { group: "", resource: "pods", namespaced: true },
      { group: "apps", resource: "deployments", namespaced: true },
      { group: "argoproj.io", resource: "rollouts" },
      { group: "gateway.networking.k8s.io", resource: "gateways", namespaced: true },
    ]);
  });
});
