/**
 * The test API server must be indistinguishable from kube-apiserver for kubemeta's
 * reflector and for @kubernetes/client-node: LIST and WATCH held to the real wire
 * captures in tests/fixtures/k8s/real/ and to the protocol rules reflectors rely on.
 * (Auth, faults and client-node: simulator-access.test.ts; simulated clusters, a large
 * one streamed whole: simulator-population.test.ts; custom resources: simulator-crd.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  apiFetch,
  keysOf,
  listJson,
  realFixture,
  realFixtureText,
  testPod,
  waitFor,
  WatchReader,
} from "./apiserver-client.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";

let server: TestApiServer;
beforeAll(async () => {
  server = await startTestApiServer({ bookmarkIntervalMs: 100 });
});
afterAll(() => server.stop());

describe("LIST", () => {
  test(
    "pages come from the first page's snapshot; " + "an expired continue token gets the real 410 Expired Status",
    async () => {
      for (let i = 0; i < 25; i++) server.create(testPod(`page-${String(i).padStart(2, "0")}`, "paging"));
      const first = await listJson(server, "/api/v1/namespaces/paging/pods?limit=10");
      const snapshotRv = first.body.metadata.resourceVersion;
      expect(first.body.items.map((p) => p.metadata!.name)).toEqual(
        Array.from({ length: 10 }, (_, i) => `page-${String(i).padStart(2, "0")}`),
      );
      expect(first.body.metadata.remainingItemCount).toBe(15);
      // Changes after page 1 must not show up in page 2: same revision, as etcd serves it.
      server.delete("Pod", "paging", "page-12");
      server.create(testPod("page-10a", "paging"));
      const second = await listJson(
        server,
        `/api/v1/namespaces/paging/pods?limit=10&continue=${first.body.metadata.continue}`,
      );
      expect(second.body.metadata.resourceVersion).toBe(snapshotRv);
      expect(second.body.items.map((p) => p.metadata!.name)).toContain("page-12");
      expect(second.body.items.map((p) => p.metadata!.name)).not.toContain("page-10a");

      server.expireContinueTokens();
      const expired = await apiFetch(
        server,
        `/api/v1/namespaces/paging/pods?limit=10&continue=${second.body.metadata.continue}`,
      );
      expect(expired.status).toBe(410);
      const status = (await expired.json()) as { reason: string; code: number; metadata: { continue?: string } };
      const real = await realFixture("openshift-3.11-2018/core.v1.Status.Expired-410.json");
      expect(keysOf(status)).toEqual(keysOf(real));
      expect(status).toMatchObject({ kind: "Status", status: "Failure", reason: "Expired", code: 410 });
      // The token in the Status continues, inconsistently, over the current state.
      const rest = await listJson(
        server,
        `/api/v1/namespaces/paging/pods?limit=10&continue=${status.metadata.continue}`,
      );
      expect(rest.body.items.map((p) => p.metadata!.name)).toEqual([
        "page-20",
        "page-21",
        "page-22",
        "page-23",
        "page-24",
      ]);
      expect(rest.body.metadata.resourceVersion).toBe(server.resourceVersion());
    },
  );

  test("label and field selectors: equality, inequality, existence; unsupported fields are a 400", async () => {
    server.create(testPod("sel-a", "selectors", { app: "web", tier: "front" }, "node-a"));
    server.create(testPod("sel-b", "selectors", { app: "web", tier: "db" }, "node-b"));
    server.create(testPod("sel-c", "selectors", { team: "x" }, "node-a"));
    const names = async (query: string) =>
      (await listJson(server, `/api/v1/namespaces/selectors/pods?${query}`)).body.items.map((p) => p.metadata!.name);
    expect(await names("labelSelector=app%3Dweb,tier!%3Ddb")).toEqual(["sel-a"]);
    expect(await names("labelSelector=tier")).toEqual(["sel-a", "sel-b"]);
    expect(await names("labelSelector=!tier")).toEqual(["sel-c"]);
    expect(await names("labelSelector=tier%20in%20(db,cache)")).toEqual(["sel-b"]);
    expect(await names("fieldSelector=spec.nodeName%3Dnode-a")).toEqual(["sel-a", "sel-c"]);
    expect(await names("fieldSelector=metadata.name%3Dsel-b")).toEqual(["sel-b"]);
    const bad = await apiFetch(server, "/api/v1/pods?fieldSelector=spec.image%3Dx");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toBe("field label not supported: spec.image");
    // As fields.ParseSelector: `\,` `\=` `\\` escape a value, and a field name is taken as written (no trimming).
    const field = (selector: string) => `fieldSelector=${encodeURIComponent(selector)}`;
    expect(await names(field("metadata.name!=a\\,b\\=c\\\\d,spec.nodeName=node-a"))).toEqual(["sel-a", "sel-c"]);
    for (const refused of [" metadata.name=sel-b", "metadata.name=a,b=c=d", "metadata.name=a\\b"])
      expect([refused, (await apiFetch(server, `/api/v1/pods?${field(refused)}`)).status]).toEqual([refused, 400]);
  });

  test("a resourceVersion the server has not reached yet is 504 Too large resource version", async () => {
    const ahead = Number(server.resourceVersion()) + 100;
    const response = await apiFetch(server, `/api/v1/pods?resourceVersion=${ahead}&resourceVersionMatch=NotOlderThan`);
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({
      reason: "Timeout",
      details: { causes: [{ reason: "ResourceVersionTooLarge" }] },
    });
  });
});

describe("WATCH", () => {
  test("from a resourceVersion: exactly the later events, in order, then live ones", async () => {
    server.create(testPod("w-1", "watching"));
    server.create(testPod("w-2", "watching"));
    const from = server.resourceVersion();
    server.patch("Pod", "watching", "w-1", (p) => {
      p.metadata!.labels = { app: "web", version: "2" };
    });
    server.delete("Pod", "watching", "w-2");
    const watch = await WatchReader.open(server, `/api/v1/namespaces/watching/pods?watch=1&resourceVersion=${from}`);
    server.create(testPod("w-3", "watching"));
    const events = await watch.until((e) => e.object.metadata!.name === "w-3");
    expect(events.map((e) => `${e.type} ${e.object.metadata!.name}`)).toEqual([
      "MODIFIED w-1",
      "DELETED w-2",
      "ADDED w-3",
    ]);
    const rvs = events.map((e) => Number(e.object.metadata!.resourceVersion));
    expect(rvs).toEqual([Number(from) + 1, Number(from) + 2, Number(from) + 3]);
    await watch.close();
  });

  test("a label-selected watch sees an object leave its selection as DELETED", async () => {
    server.create(testPod("leaving", "filtered", { app: "web" }));
    const watch = await WatchReader.open(
      server,
      `/api/v1/namespaces/filtered/pods?watch=1&labelSelector=app%3Dweb&resourceVersion=${server.resourceVersion()}`,
    );
    server.patch("Pod", "filtered", "leaving", (p) => {
      p.metadata!.labels = { app: "api" };
    });
    expect((await watch.next())?.type).toBe("DELETED");
    await watch.close();
  });

  test(
    "from a compacted resourceVersion: " + "one ERROR event with a 410 Expired Status, then the stream ends",
    async () => {
      const old = Number(server.resourceVersion());
      server.create(testPod("after-compaction", "compacted"));
      server.compact();
      const watch = await WatchReader.open(server, `/api/v1/pods?watch=1&resourceVersion=${old}`);
      const events = await watch.rest();
      expect(events).toHaveLength(1);
      expect(events[0]!.type).toBe("ERROR");
      expect(events[0]!.object).toMatchObject({
        kind: "Status",
        reason: "Expired",
        code: 410,
        message: `too old resource version: ${old} (${old + 1})`,
      });

      server.failNext({ verb: "watch", resource: "pods", status: 410, as: "status" });
      const asStatus = await apiFetch(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
      expect(asStatus.status).toBe(410);
      expect(await asStatus.json()).toMatchObject({ reason: "Expired", code: 410 });
    },
  );

  test("history is bounded: resuming from before the last `watchHistory` events is 410", async () => {
    const small = await startTestApiServer({ watchHistory: 3 });
    try {
      small.create(testPod("h-first"));
      const from = small.resourceVersion();
      for (let i = 0; i < 5; i++) small.create(testPod(`h-${i}`));
      const stale = await WatchReader.open(small, `/api/v1/pods?watch=1&resourceVersion=${from}`);
      expect((await stale.rest())[0]!.object).toMatchObject({ code: 410 });
      const fresh = await WatchReader.open(
        small,
        `/api/v1/pods?watch=1&resourceVersion=${Number(small.resourceVersion()) - 3}`,
      );
      expect((await fresh.until((e) => e.object.metadata!.name === "h-4")).map((e) => e.object.metadata!.name)).toEqual(
        ["h-2", "h-3", "h-4"],
      );
      await fresh.close();
    } finally {
      await small.stop();
    }
  });

  test("allowWatchBookmarks brings periodic BOOKMARKs of the real shape; without it, none", async () => {
    const plain = await WatchReader.open(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
    const watch = await WatchReader.open(
      server,
      `/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${server.resourceVersion()}`,
    );
    const [first] = await watch.until((e) => e.type === "BOOKMARK");
    await watch.until((e) => e.type === "BOOKMARK");
    expect(first!.raw).toBe(
      `{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1",` +
        `"metadata":{"resourceVersion":"${server.resourceVersion()}"},"spec":{"containers":null},"status":{}}}`,
    );
    server.create(testPod("after-bookmarks", "bookmarks"));
    expect((await plain.next())?.object.metadata?.name).toBe("after-bookmarks"); // and no BOOKMARK before it
    const nodes = await WatchReader.open(
      server,
      `/api/v1/nodes?watch=1&allowWatchBookmarks=1&resourceVersion=${server.resourceVersion()}`,
    );
    expect((await nodes.next())?.object).toMatchObject({
      kind: "Node",
      apiVersion: "v1",
      metadata: { resourceVersion: server.resourceVersion() },
    });
    await Promise.all([plain.close(), watch.close(), nodes.close()]);
  });

  test(
    "streaming list: every object as ADDED, " +
      "then the initial-events-end BOOKMARK of the real capture, then live events",
    async () => {
      for (const name of ["s-1", "s-2", "s-3"]) server.create(testPod(name, "streaming"));
      const query = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
      const watch = await WatchReader.open(server, `/api/v1/namespaces/streaming/pods?${query}`);
      const events = await watch.until((e) => e.type === "BOOKMARK");
      expect(events.map((e) => `${e.type} ${e.object.metadata!.name ?? ""}`)).toEqual([
        "ADDED s-1",
        "ADDED s-2",
        "ADDED s-3",
        "BOOKMARK ",
      ]);
      const realLines = (await realFixtureText("kind-v1.36.2/watch.core.v1.pods.sendInitialEvents.ndjson"))
        .trimEnd()
        .split("\n");
      const realEnd = realLines
        .at(-1)!
        .replace('"resourceVersion":"550"', `"resourceVersion":"${server.resourceVersion()}"`);
      expect(events.at(-1)!.raw).toBe(realEnd);
      expect(keysOf(events[0]!.object)).toEqual(keysOf(JSON.parse(realLines[0]!).object));
      server.create(testPod("s-4", "streaming"));
      expect((await watch.next())?.type).toBe("ADDED");
      await watch.close();
    },
  );

  test(
    "streaming list options are validated like kube-apiserver; " +
      "streamingList:false answers like a WatchList-disabled server",
    async () => {
      const invalid = await apiFetch(server, "/api/v1/pods?watch=1&sendInitialEvents=true");
      expect(invalid.status).toBe(422);
      const body = await invalid.json();
      expect(keysOf(body)).toEqual(keysOf(await realFixture("kind-v1.36.2/core.v1.Status.Invalid-422.json")));
      expect(body).toMatchObject({
        reason: "Invalid",
        details: { kind: "ListOptions", causes: [{ field: "resourceVersionMatch" }] },
      });

      const old = await startTestApiServer({ streamingList: false });
      try {
        const refused = await apiFetch(
          old,
          "/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        );
        expect(refused.status).toBe(422);
        expect(((await refused.json()) as { message: string }).message).toBe(
          'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: ' +
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        );
      } finally {
        await old.stop();
      }
    },
  );

  test("timeoutSeconds ends the stream cleanly", async () => {
    const watch = await WatchReader.open(
      server,
      `/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=${server.resourceVersion()}`,
    );
    expect(await watch.rest(3000)).toEqual([]);
  });

  test("a quiet watch gets its headers at once (Bun.serve would hold them back until the first byte)", async () => {
    // The Bun 1.4.4 quirk the server avoids by using node:https with flushHeaders():
    const bunServe = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => new Response(new ReadableStream({ start() {} })),
    });
    const held = fetch(`http://127.0.0.1:${bunServe.port}/`, { signal: AbortSignal.timeout(500) });
    await expect(held).rejects.toThrow();
    bunServe.stop(true);

    // No event will ever come on this one (no bookmarks asked for): headers held back would never come.
    const quietWatch = apiFetch(
      server,
      `/api/v1/namespaces/nothing-here/pods?watch=1&resourceVersion=${server.resourceVersion()}`,
    );
    let timer: Timer | undefined;
    const deadline = new Promise<"no headers">((resolve) => (timer = setTimeout(resolve, 3_000, "no headers")));
    const quiet = await Promise.race([quietWatch, deadline]).finally(() => clearTimeout(timer));
    if (quiet === "no headers") throw new Error("a quiet watch got no headers within 3 s");
    expect(quiet.status).toBe(200);
    expect(quiet.headers.get("content-type")).toBe("application/json");
    await quiet.body?.cancel();
  });

  test("dropWatches cuts connections; stallWatches holds everything back, even headers, until released", async () => {
    const open = await WatchReader.open(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
    await waitFor(() => server.openWatches() >= 1, 2000, "the watch to register");
    server.dropWatches();
    await expect(open.next()).rejects.toThrow();
    await waitFor(() => server.openWatches() === 0, 2000, "dropped watches to close");

    const before = await WatchReader.open(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
    server.stallWatches(true);
    const during = apiFetch(server, `/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion()}`);
    server.create(testPod("stalled", "stall"));
    const nothing = await Promise.race([during.then(() => "headers"), before.next(300).catch(() => "nothing")]);
    expect(nothing).toBe("nothing");
    server.stallWatches(false);
    expect((await before.next())?.object.metadata?.name).toBe("stalled");
    const after = new WatchReader(await during);
    expect((await after.next())?.object.metadata?.name).toBe("stalled");
    await Promise.all([before.close(), after.close()]);
  });
});
