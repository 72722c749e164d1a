/**
 * What no source lists any more leaves the state: a resource taken out of the config (or its source removed), and a
 * CRD re-created with another kind under the same resource while kubemeta was down, or while its watch was away.
 * Nothing sends the DELETED of their objects: once every source has synced, the core deletes what is stored under a
 * resource no source asked for, and a relist deletes the objects of a kind its resource held before. Real hosts on
 * one store, against the wire-faithful test API server.
 */
import { expect, test } from "bun:test";
import type { TestHost } from "../testing/index.ts";
import { waitFor } from "../testing/index.ts";
import {
  FOOBARS,
  fooBar,
  GROUP,
  GVR,
  readiness,
  ready,
  storedNames,
  updatesAfter,
  withFooBarHosts,
} from "./source-kubernetes-crd-fixtures.ts";

test(
  "a resource taken out of the config: once the sources synced, its stored objects are deleted",
  () =>
    withFooBarHosts(async (_server, start) => {
      const first = await start(["namespaces", GVR]);
      await ready(first);
      expect(await storedNames(first, "FooBar")).toEqual(["fb1", "fb2"]);
      const namespaces = await storedNames(first, "Namespace");
      const head = first.host.log.head();
      await first.stop();

      const second = await start(["namespaces"]);
      await ready(second);
      await waitFor(async () => (await storedNames(second, "FooBar")).length === 0, 5000, "the FooBars deleted");
      expect((await updatesAfter(second, head)).sort()).toEqual(["DELETED FooBar fb1", "DELETED FooBar fb2"]);
      expect(await storedNames(second, "Namespace")).toEqual(namespaces);
      expect(second.host.metrics.render()).toContain(
        'kubemeta_retracted_objects_total{kind="FooBar",reason="unwatched"} 2',
      );
    }),
  20_000,
);

test(
  "a CRD re-created with another kind while kubemeta was down: the old kind's objects are deleted",
  () =>
    withFooBarHosts(async (server, start) => {
      const first = await start([GVR]);
      await ready(first);
      const head = first.host.log.head();
      await first.stop();

      server.uninstallResource(GROUP, "v1", "foobars");
      server.installResource({ ...FOOBARS, kind: "Widget" });
      server.create({ ...fooBar("w1"), kind: "Widget" });
      const second = await start([GVR]);
      await ready(second);
      await waitFor(async () => (await storedNames(second, "FooBar")).length === 0, 5000, "the FooBars deleted");
      expect(await storedNames(second, "Widget")).toEqual(["w1"]);
      expect(second.host.metrics.render()).toContain(
        'kubemeta_retracted_objects_total{kind="FooBar",reason="kind-changed"} 2',
      );
      expect((await updatesAfter(second, head)).sort()).toEqual([
        "ADDED Widget w1",
        "DELETED FooBar fb1",
        "DELETED FooBar fb2",
      ]);
    }),
  20_000,
);

/** How kubemeta ends: the Widget listed, the FooBars deleted by that list (their own DELETED never came), ready. */
async function expectKindChanged(host: TestHost, head: number): Promise<void> {
  await waitFor(async () => (await storedNames(host, "Widget")).length === 1, 10_000, "the Widget");
  await waitFor(async () => (await storedNames(host, "FooBar")).length === 0, 5000, "the FooBars deleted");
  expect((await updatesAfter(host, head)).sort()).toEqual([
    "ADDED Widget w1",
    "DELETED FooBar fb1",
    "DELETED FooBar fb2",
  ]);
  expect(host.host.metrics.render()).toContain(
    'kubemeta_retracted_objects_total{kind="FooBar",reason="kind-changed"} 2',
  );
  expect((await readiness(host)).status).toBe(200);
}

test.each([
  ["a streaming list, parsed on a parse thread", {}],
  ["a streaming list, parsed on the main thread", { parseThreads: 0 }],
  ["a paginated LIST", { streamingList: "never" }],
])(
  "a CRD re-created with another kind while kubemeta ran and its watch was away (then %s): the new kind is watched",
  (_how, keys) =>
    withFooBarHosts(async (server, start) => {
      const host = await start([GVR], keys);
      await ready(host);
      const head = host.host.log.head();
      // Watches held up while the CRD goes and comes back: the DELETED of its objects never reach kubemeta, whose next
      // watch gets 410 Gone (none resumes across a CRD created again) and whose relist finds Widgets.
      server.stallWatches(true);
      server.uninstallResource(GROUP, "v1", "foobars");
      server.installResource({ ...FOOBARS, kind: "Widget" });
      server.create({ ...fooBar("w1"), kind: "Widget" });
      server.stallWatches(false);
      await expectKindChanged(host, head);
      expect(host.host.metrics.render()).toContain(
        'kubemeta_source_watch_restarts_total{reason="kind-changed",resource="foobars"} 1',
      );
    }),
  20_000,
);
