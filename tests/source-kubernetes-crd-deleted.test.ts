/**
 * A CRD deleted while kubemeta is down: nobody sends the DELETED of its objects, which the API server deleted with
 * it. Once discovery has found the resource not served on two looks at least `discovery.initial` apart, the core
 * deletes them and forgets the resume point; a look that finds it served again, or a failed look, deletes nothing.
 * Real hosts on one store, against the wire-faithful test API server.
 */
import { expect, test } from "bun:test";
import type { TestApiServer } from "../simulator/index.ts";
import { waitFor, type TestHost } from "../testing/index.ts";
import {
  discoveries,
  FOOBARS,
  fooBar,
  GROUP,
  GVR,
  NOT_SERVED,
  readiness,
  ready,
  storedNames,
  updatesAfter,
  withFooBarHosts,
} from "./source-kubernetes-crd-fixtures.ts";

/** FAST_DISCOVERY's `discovery.initial`. */
const INITIAL_MS = 200;

/**
 * Runs `body` with a store that holds fb1 and fb2, committed up to `head` by a kubemeta since stopped, and `start`,
 * which starts kubemeta again on that store.
 */
function withStoredFooBars(
  body: (server: TestApiServer, start: () => Promise<TestHost>, head: number) => Promise<void>,
): Promise<void> {
  return withFooBarHosts(async (server, startWith) => {
    const start = () => startWith([GVR]);
    const first = await start();
    await ready(first);
    expect(await storedNames(first, "FooBar")).toEqual(["fb1", "fb2"]);
    const head = first.host.log.head();
    await first.stop();
    server.resetRequests();
    await body(server, start, head);
  });
}

/** Deletes the CRD and restarts kubemeta; resolves once its objects are gone from the store. */
async function restartWithoutTheCrd(server: TestApiServer, start: () => Promise<TestHost>): Promise<TestHost> {
  server.uninstallResource(GROUP, "v1", "foobars");
  const started = performance.now();
  const host = await start();
  await waitFor(async () => (await storedNames(host, "FooBar")).length === 0, 5000, "the CRD's objects deleted");
  // Not at the first look: at a second one, at least discovery.initial later.
  expect(discoveries(server)).toBeGreaterThanOrEqual(2);
  expect(performance.now() - started).toBeGreaterThanOrEqual(INITIAL_MS);
  return host;
}

test(
  "a CRD deleted while kubemeta was down: after the second look its objects are deleted (DELETED to consumers), " +
    "and the source waits, unready, for the resource to be served again",
  () =>
    withStoredFooBars(async (server, start, head) => {
      const host = await restartWithoutTheCrd(server, start);
      expect((await updatesAfter(host, head)).sort()).toEqual(["DELETED FooBar fb1", "DELETED FooBar fb2"]);
      expect(await readiness(host)).toEqual({ status: 503, waiting: [`source kubernetes: ${NOT_SERVED}`] });
    }),
  20_000,
);

test(
  "the CRD created again later: its resource lists afresh, not from the forgotten resume point",
  () =>
    withStoredFooBars(async (server, start, head) => {
      const host = await restartWithoutTheCrd(server, start);
      server.installResource(FOOBARS);
      server.create(fooBar("fb3"));
      await ready(host);
      expect(await storedNames(host, "FooBar")).toEqual(["fb3"]);
      const updates = await updatesAfter(host, head);
      expect(updates.slice(0, 2).sort()).toEqual(["DELETED FooBar fb1", "DELETED FooBar fb2"]);
      expect(updates.slice(2)).toEqual(["ADDED FooBar fb3"]);
      expect(server.requests()["watchlist foobars"]).toBe(1);
      expect(server.requests()["watch foobars"]).toBeUndefined();
    }),
  20_000,
);

/** Restarts kubemeta on the store of fb1 and fb2 and checks it resumed them as they were: nothing deleted, no list. */
async function expectResumedUntouched(server: TestApiServer, host: TestHost, head: number): Promise<void> {
  await ready(host);
  expect(await storedNames(host, "FooBar")).toEqual(["fb1", "fb2"]);
  expect(await updatesAfter(host, head)).toEqual([]);
  const requests = server.requests();
  expect(requests["watchlist foobars"]).toBeUndefined();
  expect(requests["list foobars"]).toBeUndefined();
  server.create(fooBar("fb3"));
  await waitFor(async () => (await storedNames(host, "FooBar")).length === 3, 5000, "the resumed watch's ADDED");
}

const notServedOnce = { verb: "discovery", resource: `/apis/${GROUP}/v1`, status: 404 } as const;

test(
  "not served at the first look only (an API server that has not loaded its CRDs yet): nothing deleted",
  () =>
    withStoredFooBars(async (server, start, head) => {
      server.failNext(notServedOnce);
      const host = await start();
      await expectResumedUntouched(server, host, head);
      expect(discoveries(server)).toBe(2);
    }),
  20_000,
);

test(
  "a failed look between two that find the resource not served starts over: nothing deleted",
  () =>
    withStoredFooBars(async (server, start, head) => {
      // The second 404 comes more than discovery.initial after the first (the 503 waits its Retry-After: 1 s).
      server.failNext(notServedOnce);
      server.failNext({ verb: "discovery", resource: `/apis/${GROUP}/v1`, status: 503, retryAfterSeconds: 1 });
      server.failNext(notServedOnce);
      const host = await start();
      await expectResumedUntouched(server, host, head);
      expect(discoveries(server)).toBe(4);
    }),
  20_000,
);

test(
  "deleted and created again while kubemeta was down: no watch resumes across the two (410 Gone), and the relist " +
    "deletes the objects that went with the old CRD",
  () =>
    withStoredFooBars(async (server, start, head) => {
      server.uninstallResource(GROUP, "v1", "foobars");
      server.installResource(FOOBARS);
      server.create(fooBar("fb1", "value2")); // the same name, a new uid
      server.create(fooBar("fb3"));
      const host = await start();
      await ready(host);
      await waitFor(async () => (await storedNames(host, "FooBar")).join() === "fb1,fb3", 5000, "the new FooBars");
      expect((await updatesAfter(host, head)).sort()).toEqual([
        "ADDED FooBar fb1",
        "ADDED FooBar fb3",
        "DELETED FooBar fb1",
        "DELETED FooBar fb2",
      ]);
      expect(host.host.metrics.render()).toContain(
        'kubemeta_source_watch_restarts_total{reason="expired",resource="foobars"} 1',
      );
    }),
  20_000,
);
