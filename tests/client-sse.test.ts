/**
 * The client library over SSE against a real host (libSQL file, HTTP on loopback):
 * initial sync then live, a kubemeta restart mid-stream, an epoch change.
 */
import { afterEach, expect, test } from "bun:test";
import { subscribeSse, type Subscription } from "../client/index.ts";
import type { KubeObject } from "../sdk/model.ts";
import { matchesStore, recorder, type Recorder } from "./client-recorder.ts";
import { forward, front } from "./http-front.ts";
import { encode, pod, scriptedWatch, sse, synced } from "./sse-script.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";

const hosts: TestHost[] = [];
const subscriptions: Subscription[] = [];
afterEach(async () => {
  for (const s of subscriptions.splice(0)) await s.stop();
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(options: { dir?: string; port?: number } = {}): Promise<TestHost> {
  const th = await startTestHost({ dir: options.dir, sinks: [{ type: "sse" }], http: { port: options.port ?? 0 } });
  hosts.push(th);
  return th;
}

function subscribe(th: TestHost, r: Recorder, streams = ["all"]): Subscription {
  const subscription = subscribeSse({ url: th.url, streams, reconnect: { initialMs: 20, maxMs: 100 }, ...r.handlers });
  subscriptions.push(subscription);
  return subscription;
}

async function commit(th: TestHost, ...changes: ["ADDED" | "MODIFIED" | "DELETED", KubeObject][]): Promise<void> {
  for (const [type, object] of changes) await th.changes.apply("pods", type, object);
  await th.changes.flush();
}

const portOf = (th: TestHost) => Number(new URL(th.url).port);

test("initial sync, then live updates as informer callbacks; the cache equals the store", async () => {
  const th = await host();
  await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })], ["ADDED", rawPod("web-2", { node: "n2" })]);
  const r = recorder();
  const subscription = subscribe(th, r);
  await subscription.synced;
  expect(r.calls.sort()).toEqual(["ADDED web-1", "ADDED web-2"]);
  expect(r.resets).toMatchObject([{ stream: "all", reason: "no-resume-point", previousEpoch: undefined }]);
  expect(r.synced).toEqual([{ stream: "all", epoch: th.host.epoch, version: th.host.log.head() }]);

  r.calls.length = 0;
  await commit(
    th,
    ["MODIFIED", rawPod("web-1", { node: "n1", phase: "Failed", rv: "2" })],
    ["DELETED", rawPod("web-2", { node: "n2" })],
    ["ADDED", rawPod("web-3")],
  );
  await waitFor(() => r.calls.length === 3, 5_000, "three live callbacks");
  expect(r.calls).toEqual(["UPDATED web-1", "DELETED web-2", "ADDED web-3"]);
  expect(subscription.objects("all").get("uid-web-1")?.object).toMatchObject({ status: { phase: "Failed" } });
  expect(await matchesStore(th, subscription, ["all"], r.view)).toBe(true);
  expect(r.errors).toEqual([]);
});

test("a node agent's two streams: each cache holds its stream only", async () => {
  const th = await host();
  await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })], ["ADDED", rawPod("web-2", { node: "n2" })]);
  await th.changes.apply("namespaces", "ADDED", {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: { name: "payments", uid: "ns-payments", resourceVersion: "1" },
  });
  await th.changes.flush();
  const r = recorder();
  const subscription = subscribe(th, r, ["node/n1", "shared"]);
  await subscription.synced;
  expect([...subscription.objects("node/n1").keys()]).toEqual(["uid-web-1"]);
  expect([...subscription.objects("shared").keys()]).toEqual(["ns-payments"]);
  expect(await matchesStore(th, subscription, ["node/n1", "shared"], r.view)).toBe(true);
});

test("kubemeta restarts mid-stream: the client resumes where it was, without a reset", async () => {
  const first = await host();
  await commit(first, ["ADDED", rawPod("web-1", { node: "n1" })]);
  const r = recorder();
  const subscription = subscribe(first, r);
  await subscription.synced;
  await commit(first, ["ADDED", rawPod("web-2", { node: "n1" })]);
  await waitFor(() => r.view.size === 2, 5_000, "the live update");

  await first.stop();
  hosts.splice(hosts.indexOf(first), 1);
  const second = await host({ dir: first.dir, port: portOf(first) });
  expect(second.host.epoch).toBe(first.host.epoch);
  await commit(second, ["DELETED", rawPod("web-1", { node: "n1" })], ["ADDED", rawPod("web-3", { node: "n2" })]);

  await waitFor(
    () => matchesStore(second, subscription, ["all"], r.view),
    10_000,
    "the cache to catch up after the restart",
  );
  expect(r.calls).toEqual(["ADDED web-1", "ADDED web-2", "DELETED web-1", "ADDED web-3"]);
  expect(r.resets).toHaveLength(1);
  expect(r.synced.length).toBeGreaterThanOrEqual(2);
});

test(
  "the store is recreated (new epoch): " +
    "a reset rebuilds the cache and reports what changed, vanished objects as deletes",
  async () => {
    const first = await host();
    await commit(first, ["ADDED", rawPod("kept")], ["ADDED", rawPod("changed")], ["ADDED", rawPod("vanished")]);
    const r = recorder();
    const subscription = subscribe(first, r);
    await subscription.synced;
    const oldEpoch = first.host.epoch;

    await first.stop();
    hosts.splice(hosts.indexOf(first), 1);
    // The new store is filled before the client can reach it (elsewhere), so that its one reset sees all of it.
    const dir = await tempDir();
    const filling = await host({ dir });
    await commit(
      filling,
      ["ADDED", rawPod("changed", { phase: "Failed", rv: "2" })],
      ["ADDED", rawPod("kept")],
      ["ADDED", rawPod("new")],
    );
    await filling.stop();
    hosts.splice(hosts.indexOf(filling), 1);
    const second = await host({ dir, port: portOf(first) });
    expect(second.host.epoch).not.toBe(oldEpoch);

    await waitFor(() => r.resets.length === 2, 10_000, "the second reset");
    expect(r.resets[1]).toEqual({
      stream: "all",
      epoch: second.host.epoch,
      previousEpoch: oldEpoch,
      reason: expect.stringContaining("epoch"),
    });
    expect(r.calls.slice(3).sort()).toEqual(["ADDED new", "DELETED vanished", "UPDATED changed"]);
    expect(await matchesStore(second, subscription, ["all"], r.view)).toBe(true);
    expect([...subscription.objects("all").values()].every((e) => e.epoch === second.host.epoch)).toBe(true);
  },
);

test("stop() ends the connections: the server sees its subscriber go", async () => {
  const th = await host();
  const subscription = subscribe(th, recorder());
  await subscription.synced;
  await subscription.stop();
  await subscription.stop();
  await waitFor(
    async () =>
      (await (await fetch(`${th.url}/metrics`)).text()).includes('kubemeta_sse_subscribers{stream="all"} 0\n'),
    5_000,
    "the subscriber gauge to drop",
  );
});

test(
  "a url with a path (kubemeta mounted under /kubemeta by a proxy): requests go under it, a trailing slash or not; " +
    "a refusal names the path asked; a query or fragment is refused at once",
  async () => {
    const th = await host();
    await commit(th, ["ADDED", rawPod("web-1")]);
    const mount = "/kubemeta";
    const proxy = front(th, (request, upstream) =>
      upstream.pathname.startsWith(`${mount}/`)
        ? forward(request, new URL(`${upstream.pathname.slice(mount.length)}${upstream.search}`, th.url))
        : new Response("no such path", { status: 404 }),
    ).proxy;
    const base = proxy.url.href.replace(/\/$/, "");
    try {
      for (const url of [`${base}${mount}`, `${base}${mount}/`]) {
        const r = recorder();
        subscriptions.push(subscribeSse({ url, streams: ["all"], ...r.handlers }));
        await waitFor(() => r.synced.length === 1, 5_000, `a sync through ${url}`);
        expect(r.calls).toEqual(["ADDED web-1"]);
      }
      const elsewhere = recorder();
      const reconnect = { initialMs: 10, maxMs: 20 };
      subscriptions.push(
        subscribeSse({ url: `${base}/elsewhere/`, streams: ["all"], reconnect, ...elsewhere.handlers }),
      );
      await waitFor(() => elsewhere.errors.length > 0, 5_000, "the front's 404");
      expect(elsewhere.errors[0]?.message).toBe("GET /elsewhere/v1/watch answered 404: no such path");
      for (const url of [`${base}${mount}?tenant=a`, `${base}${mount}#top`])
        expect(() => subscribeSse({ url, streams: ["all"] })).toThrow(/^url: .* has a query or fragment/);
    } finally {
      for (const s of subscriptions.splice(0)) await s.stop();
      proxy.stop(true);
    }
  },
);

test("stop() before the first sync: synced resolves (it never rejects), so nothing awaiting it hangs", async () => {
  const silent = scriptedWatch([[]]);
  try {
    const subscription = subscribeSse({ url: silent.url, streams: ["all"] });
    let settled = false;
    void subscription.synced.then(() => {
      settled = true;
    });
    await waitFor(() => silent.lastEventIds.length === 1, 5_000, "the connection");
    expect(settled).toBe(false);
    await subscription.stop();
    await waitFor(() => settled, 2_000, "synced to resolve after stop()");
  } finally {
    silent.stop();
  }
});

test(
  "events split anywhere (CRLF, multi-byte characters) parse; " +
    "a silent connection is cut and resumed from the cache's position",
  async () => {
    const wire = encode(
      `: hi\r\n\r\nid:\r\n${sse("RESET", { reason: "no resume point" })}` +
        `${sse("ADDED", pod(7, 0, "café-ü"))}${synced(9)}`,
    );
    const cuts = [0, 3, 4, 40, wire.indexOf(0xc3) + 1, wire.lastIndexOf(0x0d) + 1, wire.length];
    const server = scriptedWatch([cuts.slice(1).map((cut, i) => wire.slice(cuts[i], cut))]);
    try {
      const r = recorder();
      const subscription = subscribeSse({
        url: server.url,
        streams: ["all"],
        idleTimeoutMs: 300,
        reconnect: { initialMs: 10, maxMs: 20 },
        ...r.handlers,
      });
      subscriptions.push(subscription);
      await subscription.synced;
      expect(subscription.objects("all").get("u-café-ü")?.name).toBe("café-ü");
      await waitFor(() => server.lastEventIds.length >= 2, 5_000, "a reconnect after the silence");
      expect(server.lastEventIds.slice(0, 2)).toEqual([null, "e1:9"]);
      expect(r.errors[0]?.message).toContain("nothing received for 300 ms");
    } finally {
      for (const s of subscriptions.splice(0)) await s.stop();
      server.stop();
    }
  },
);

test(
  "a prev that skips versions: " + "the client cuts the connection and resumes from the last version it holds",
  async () => {
    const server = scriptedWatch([
      // 11 comes with 10 missing (prev 10 > position 9); what follows in the same read must not move the position.
      [
        encode(
          `${sse("RESET", { reason: "no resume point" })}${synced(9)}` +
            `${sse("ADDED", pod(11, 10), "e1:11")}${sse("ADDED", pod(12, 11), "e1:12")}${synced(12)}`,
        ),
      ],
      [
        encode(
          `${sse("ADDED", pod(10, 9), "e1:10")}${sse("ADDED", pod(11, 10), "e1:11")}` +
            `${sse("ADDED", pod(12, 11), "e1:12")}${synced(12)}`,
        ),
      ],
    ]);
    try {
      const r = recorder();
      const subscription = subscribeSse({
        url: server.url,
        streams: ["all"],
        reconnect: { initialMs: 10, maxMs: 20 },
        ...r.handlers,
      });
      subscriptions.push(subscription);
      await waitFor(() => r.synced.length === 2, 5_000, "the resumed connection's SYNCED");
      expect(server.lastEventIds).toEqual([null, "e1:9"]);
      expect(r.calls).toEqual(["ADDED p10", "ADDED p11", "ADDED p12"]);
      expect(r.errors.map((e) => e.message)).toEqual([
        expect.stringContaining("missed updates of all between 9 and 10"),
      ]);
    } finally {
      for (const s of subscriptions.splice(0)) await s.stop();
      server.stop();
    }
  },
);

test("a 200 that is no event stream (an auth proxy's login page) is reported, and asked again", async () => {
  let asked = 0;
  const login = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => {
      asked++;
      return new Response("<html>sign in</html>", { headers: { "content-type": "text/html" } });
    },
  });
  try {
    const r = recorder();
    const subscription = subscribeSse({
      url: login.url.href,
      streams: ["all"],
      reconnect: { initialMs: 10, maxMs: 20 },
      ...r.handlers,
    });
    subscriptions.push(subscription);
    await waitFor(() => asked >= 2 && r.errors.length >= 2, 5_000, "two answers reported");
    expect(r.errors[0]?.message).toBe(
      "GET /v1/watch answered 200 with text/html, not an event stream: <html>sign in</html>",
    );
  } finally {
    for (const s of subscriptions.splice(0)) await s.stop();
    login.stop(true);
  }
});
