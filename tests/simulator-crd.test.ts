/**
 * The test API server serves custom resources as kube-apiserver does once their CRD is installed: discovery, LIST
 * and WATCH of the kind v1.36.2 recordings' FooBar, and the Gateway API. (The built-in kinds: simulator.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiFetch, keysOf, listJson, realFixture, realFixtureText, WatchReader } from "./apiserver-client.ts";
import type { KubeObject } from "../sdk/model.ts";
import { GATEWAY_API, startTestApiServer, type TestApiServer } from "../simulator/index.ts";

let server: TestApiServer;
beforeAll(async () => {
  server = await startTestApiServer({ bookmarkIntervalMs: 100 });
});
afterAll(() => server.stop());

describe("custom resources", () => {
  // The CRD of the kind v1.36.2 recordings (custom_resource_definition-test.json, see SOURCES.md).
  const FOOBARS = {
    group: "k8s-openapi-tests-custom-resource-definition.com",
    version: "v1",
    resource: "foobars",
    kind: "FooBar",
    namespaced: true,
    shortNames: ["fb"],
  };
  const GROUP_VERSION = `/apis/${FOOBARS.group}/v1`;
  /** Resource versions differ from server to server; everything else must not. */
  const anyVersion = (text: string) => text.replace(/"resourceVersion":"\d+"/g, '"resourceVersion":"…"');
  const served = async (on: TestApiServer, path: string) =>
    ((await (await apiFetch(on, path)).json()) as { resources: Array<{ name: string }> }).resources.map((r) => r.name);

  let crs: TestApiServer;
  beforeAll(async () => {
    crs = await startTestApiServer({ bookmarkIntervalMs: 100 });
  });
  afterAll(() => crs.stop());

  test("not installed: group, group version and collection are a real 404; installed: discovery lists it", async () => {
    for (const path of [`/apis/${FOOBARS.group}`, GROUP_VERSION, `${GROUP_VERSION}/namespaces/default/foobars`]) {
      const response = await apiFetch(crs, path);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ kind: "Status", reason: "NotFound", code: 404 });
    }

    crs.installResource(FOOBARS);
    const groups = ((await (await apiFetch(crs, "/apis")).json()) as { groups: Array<{ name: string }> }).groups;
    const group: object | undefined = groups.find((g) => g.name === FOOBARS.group);
    const realGroups = (await realFixture<{ groups: object[] }>("kind-v1.36.2/APIGroupList.json")).groups;
    const entry = { groupVersion: `${FOOBARS.group}/v1`, version: "v1" };
    expect(group).toEqual({ name: FOOBARS.group, versions: [entry], preferredVersion: entry });
    expect(keysOf(group)).toEqual(keysOf(realGroups[0]));
    expect((await apiFetch(crs, `/apis/${FOOBARS.group}`)).status).toBe(200);
    // discovery.StorageVersionHash, and the verbs and status subresource apiextensions-apiserver lists.
    const hash = new Bun.CryptoHasher("sha256").update(`${FOOBARS.group}/v1/FooBar`).digest().subarray(0, 8);
    expect(await (await apiFetch(crs, GROUP_VERSION)).json()).toEqual({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: `${FOOBARS.group}/v1`,
      resources: [
        {
          name: "foobars",
          singularName: "foobar",
          namespaced: true,
          kind: "FooBar",
          verbs: ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
          shortNames: ["fb"],
          storageVersionHash: hash.toString("base64"),
        },
        {
          name: "foobars/status",
          singularName: "",
          namespaced: true,
          kind: "FooBar",
          verbs: ["get", "patch", "update"],
        },
      ],
    });
  });

  test("LIST and WATCH are the recorded unstructured wire form, byte for byte but for resourceVersions", async () => {
    const recorded = await realFixtureText("kind-v1.36.2/cr.FooBarList.json");
    for (const item of (JSON.parse(recorded) as { items: KubeObject[] }).items) crs.create(item);
    const listed = await (await apiFetch(crs, `${GROUP_VERSION}/namespaces/default/foobars`)).text();
    expect(anyVersion(listed)).toBe(anyVersion(recorded));

    const watch = await WatchReader.open(crs, `${GROUP_VERSION}/namespaces/default/foobars?&watch=true`);
    const lines = (await realFixtureText("kind-v1.36.2/watch.cr.foobars.ndjson")).trimEnd().split("\n");
    for (const line of lines) expect(anyVersion((await watch.next())!.raw)).toBe(anyVersion(line));
    await watch.close();
  });

  test("pages, streaming lists, bookmarks and live events of a custom resource: the unstructured form", async () => {
    const paged = await listJson(crs, `${GROUP_VERSION}/foobars?limit=1`);
    expect(keysOf(paged.body)).toEqual(["apiVersion", "items", "kind", "metadata"]);
    expect(keysOf(paged.body.metadata)).toEqual(["continue", "remainingItemCount", "resourceVersion"]);
    expect(paged.body.items.map((item) => `${item.kind} ${item.metadata!.name}`)).toEqual(["FooBar fb1"]);

    const query = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    const stream = await WatchReader.open(crs, `${GROUP_VERSION}/foobars?${query}`);
    const initial = await stream.until((e) => e.type === "BOOKMARK");
    expect(initial.map((e) => e.type)).toEqual(["ADDED", "ADDED", "BOOKMARK"]);
    expect(initial.at(-1)!.raw).toBe(
      `{"type":"BOOKMARK","object":{"apiVersion":"${FOOBARS.group}/v1","kind":"FooBar",` +
        `"metadata":{"annotations":{"k8s.io/initial-events-end":"true"},` +
        `"resourceVersion":"${crs.resourceVersion()}"}}}`,
    );
    crs.patch("FooBar", "default", "fb1", (object) => {
      (object.spec as Record<string, unknown>).prop1 = "value2";
    });
    const modified = (await stream.until((e) => e.type !== "BOOKMARK")).at(-1)!;
    expect(modified).toMatchObject({ type: "MODIFIED", object: { metadata: { name: "fb1", generation: 2 } } });
    expect(keysOf(modified.object)).toEqual(["apiVersion", "kind", "metadata", "spec"]);
    crs.delete("FooBar", "default", "fb2");
    const deleted = (await stream.until((e) => e.type !== "BOOKMARK")).at(-1)!;
    expect(deleted).toMatchObject({ type: "DELETED", object: { metadata: { name: "fb2" } } });
    await stream.close();
  });

  test("uninstalling it (deleting the CRD) deletes its objects, ends its watches; its group is 404 again", async () => {
    const watch = await WatchReader.open(
      crs,
      `${GROUP_VERSION}/foobars?watch=1&resourceVersion=${crs.resourceVersion()}`,
    );
    crs.uninstallResource(FOOBARS.group, "v1", "foobars");
    expect((await watch.rest()).map((e) => `${e.type} ${e.object.metadata!.name}`)).toEqual(["DELETED fb1"]);
    expect((await apiFetch(crs, GROUP_VERSION)).status).toBe(404);
    expect((await apiFetch(crs, `/apis/${FOOBARS.group}`)).status).toBe(404);
  });

  test("installed again: a watch from before the install gets 410 Gone, as from a new CRD's watch cache", async () => {
    const object = (name: string) => ({
      apiVersion: `${FOOBARS.group}/v1`,
      kind: "FooBar",
      metadata: { name, namespace: "default" },
    });
    crs.installResource(FOOBARS);
    crs.create(object("before"));
    const resumePoint = crs.resourceVersion();
    crs.uninstallResource(FOOBARS.group, "v1", "foobars");
    crs.installResource(FOOBARS);
    const installed = crs.resourceVersion();
    crs.create(object("after"));
    // etcd's history still holds the DELETED of `before`, but no watch of the new CRD serves it.
    const stale = await WatchReader.open(crs, `${GROUP_VERSION}/foobars?watch=1&resourceVersion=${resumePoint}`);
    expect(await stale.rest()).toMatchObject([
      {
        type: "ERROR",
        object: { code: 410, reason: "Expired", message: `too old resource version: ${resumePoint} (${installed})` },
      },
    ]);
    const fresh = await WatchReader.open(crs, `${GROUP_VERSION}/foobars?watch=1&resourceVersion=${installed}`);
    expect((await fresh.next())!).toMatchObject({ type: "ADDED", object: { metadata: { name: "after" } } });
    await fresh.close();
    crs.uninstallResource(FOOBARS.group, "v1", "foobars");
  });

  test(
    "ingresses, horizontalpodautoscalers and persistentvolumeclaims are served in their groups; " +
      "the Gateway API only once installed",
    async () => {
      expect(await served(crs, "/apis/networking.k8s.io/v1")).toEqual(["ingresses"]);
      expect(await served(crs, "/apis/autoscaling/v2")).toEqual(["horizontalpodautoscalers"]);
      expect(await served(crs, "/api/v1")).toContain("persistentvolumeclaims");
      const objects: Array<[string, KubeObject]> = [
        ["/apis/networking.k8s.io/v1/ingresses", { kind: "Ingress", apiVersion: "networking.k8s.io/v1" }],
        [
          "/apis/autoscaling/v2/horizontalpodautoscalers",
          { kind: "HorizontalPodAutoscaler", apiVersion: "autoscaling/v2" },
        ],
        ["/api/v1/persistentvolumeclaims", { kind: "PersistentVolumeClaim", apiVersion: "v1" }],
      ];
      for (const [path, object] of objects) {
        crs.create({ ...object, metadata: { name: "web", namespace: "default" } });
        const query = "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=1";
        const watch = await WatchReader.open(crs, `${path}?${query}`);
        const events = await watch.until((e) => e.type === "BOOKMARK");
        expect(events.map((e) => `${e.type} ${e.object.kind} ${e.object.apiVersion}`)).toEqual([
          `ADDED ${object.kind} ${object.apiVersion}`,
          `BOOKMARK ${object.kind} ${object.apiVersion}`,
        ]);
        await watch.close();
      }

      expect((await apiFetch(crs, "/apis/gateway.networking.k8s.io/v1")).status).toBe(404);
      for (const spec of GATEWAY_API) crs.installResource(spec);
      expect(await served(crs, "/apis/gateway.networking.k8s.io/v1")).toEqual([
        "gateways",
        "gateways/status",
        "httproutes",
        "httproutes/status",
      ]);
    },
  );
});
