/**
 * What no source lists any more leaves the state: a resource taken out of the config (or its source removed), and a
 * CRD re-created with another kind under the same resource while kubemeta was down. Nothing sends the DELETED of
 * their objects: once every source has synced, the core deletes what is stored under a resource no source asked for,
 * and a relist deletes the objects of a kind its resource held before. Real hosts on one store, against the
 * wire-faithful test API server.
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import {
  FOOBARS,
  fooBar,
  GROUP,
  GVR,
  readiness,
  storedNames,
  updatesAfter,
  withServer,
} from "./source-kubernetes-crd-fixtures.ts";

const ready = (host: TestHost) => waitFor(async () => (await readiness(host)).status === 200, 5000, "ready");

test(
  "a resource taken out of the config: once the sources synced, its stored objects are deleted",
  () =>
    withServer(async (server, source) => {
      server.installResource(FOOBARS);
      for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
      const dir = await tempDir();
      const hosts: TestHost[] = [];
      const start = async (resources: string[]) => {
        const host = await startTestHost({ dir, extra: { sources: [source(resources)] } });
        hosts.push(host);
        return host;
      };
      try {
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
      } finally {
        for (const host of hosts) await host.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }),
  20_000,
);

test(
  "a CRD re-created with another kind while kubemeta was down: the old kind's objects are deleted",
  () =>
    withServer(async (server, source) => {
      server.installResource(FOOBARS);
      for (const name of ["fb1", "fb2"]) server.create(fooBar(name));
      const dir = await tempDir();
      const hosts: TestHost[] = [];
      const start = async () => {
        const host = await startTestHost({ dir, extra: { sources: [source([GVR])] } });
        hosts.push(host);
        return host;
      };
      try {
        const first = await start();
        await ready(first);
        const head = first.host.log.head();
        await first.stop();

        server.uninstallResource(GROUP, "v1", "foobars");
        server.installResource({ ...FOOBARS, kind: "Widget" });
        server.create({ ...fooBar("w1"), kind: "Widget" });
        const second = await start();
        await ready(second);
        await waitFor(async () => (await storedNames(second, "FooBar")).length === 0, 5000, "the FooBars deleted");
        expect(await storedNames(second, "Widget")).toEqual(["w1"]);
        expect((await updatesAfter(second, head)).sort()).toEqual([
          "ADDED Widget w1",
          "DELETED FooBar fb1",
          "DELETED FooBar fb2",
        ]);
      } finally {
        for (const host of hosts) await host.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }),
  20_000,
);
