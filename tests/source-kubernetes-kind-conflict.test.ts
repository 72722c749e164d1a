/**
 * One resource per kind: the state is kept by kind, so two resources of one kind (one kind in two API groups, or one
 * resource under two sources' selectors) would each delete the other's objects at every relist. The second is not
 * watched at all: /readyz names both, the API server gets no list or watch of it, and the first keeps its objects.
 */
import { expect, test } from "bun:test";
import { startTestHost, waitFor } from "../testing/index.ts";
import { FOOBARS, fooBar, GROUP, GVR, loggedNames, readiness, withServer } from "./source-kubernetes-crd-fixtures.ts";

const OTHER_GROUP = "other.example.com";
/** The kind FooBar served by a second group, under another plural so that the API server's counts tell them apart. */
const FOOBAZS = { group: OTHER_GROUP, version: "v1", resource: "foobazs", kind: "FooBar", namespaced: true };
const OTHER_GVR = `${OTHER_GROUP}/v1/foobazs`;
const refusedReason = (resource: string, kind: string, watchedAs: string) =>
  `${resource} (its kind ${kind} is watched as ${watchedAs}: watch one of them)`;

test(
  "a kind served by a second group is not watched while the first group's resource is: /readyz names both, and " +
    "once the first is gone (its CRD deleted) the second is watched",
  () =>
    withServer(async (server, source) => {
      server.installResource(FOOBARS);
      for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
      const host = await startTestHost({ extra: { sources: [source([GVR, OTHER_GVR])] } });
      try {
        await waitFor(async () => (await loggedNames(host, "FooBar")).length === 2, 5000, "the first group's FooBars");

        server.installResource(FOOBAZS);
        const reason = refusedReason(OTHER_GVR, "FooBar", `kubernetes/${GROUP}/v1/foobars`);
        await waitFor(async () => (await readiness(host)).waiting.join().includes(reason), 5000, "the refusal");
        expect((await readiness(host)).status).toBe(503);
        // Past several looks at it (discovery.max is 400 ms here): never listed, never watched.
        await waitFor(() => (server.requests()[`discovery /apis/${OTHER_GROUP}/v1`] ?? 0) >= 4, 5000, "more looks");
        expect(server.requests()["watchlist foobazs"]).toBeUndefined();
        expect(server.requests()["list foobazs"]).toBeUndefined();
        expect(server.requests()["watch foobazs"]).toBeUndefined();
        expect((await loggedNames(host, "FooBar")).sort()).toEqual(["fb1", "fb2"]);

        server.uninstallResource(GROUP, "v1", "foobars");
        await waitFor(() => (server.requests()["watchlist foobazs"] ?? 0) === 1, 5000, "the second group's list");
        expect((await readiness(host)).waiting.join()).not.toContain("is watched as");
      } finally {
        await host.destroy();
      }
    }),
  20_000,
);

test("pods under two sources' namespaces: the second source does not watch them, and says why", () =>
  withServer(async (server, source) => {
    for (const namespace of ["a", "b"]) {
      server.create({ kind: "Namespace", apiVersion: "v1", metadata: { name: namespace } });
      server.create({
        kind: "Pod",
        apiVersion: "v1",
        metadata: { name: `pod-${namespace}`, namespace },
        spec: { nodeName: "node-1", containers: [{ name: "app", image: "app" }] },
      });
    }
    const sources = ["a", "b"].map((namespace) => ({ ...source(["pods"]), name: namespace, namespace }));
    const host = await startTestHost({ extra: { sources } });
    try {
      const reason = (watchedAs: string) =>
        refusedReason("pods", "Pod", `kubernetes/core/v1/pods?namespace=${watchedAs}`);
      const waiting = async () => (await readiness(host)).waiting.join();
      await waitFor(
        async () => (await waiting()).includes(reason("a")) || (await waiting()).includes(reason("b")),
        5000,
        "one source's refusal",
      );
      const watched = (await waiting()).includes(reason("a")) ? "a" : "b";
      await waitFor(async () => (await loggedNames(host, "Pod")).length === 1, 5000, "the watched namespace's pod");
      expect(await loggedNames(host, "Pod")).toEqual([`pod-${watched}`]);
      expect(server.requests()["watchlist pods"]).toBe(1);
      expect((await readiness(host)).status).toBe(503);
    } finally {
      await host.destroy();
    }
  }));
