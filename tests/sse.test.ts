/** GET /v1/watch over real HTTP on loopback, read by a WHATWG-compliant SSE client. */
import { afterEach, describe, expect, test } from "bun:test";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { json, versionsOf, openSse, type SseConnection, type SseEvent } from "./sse-client.ts";
import type { KubeObject } from "../sdk/model.ts";

const hosts: TestHost[] = [];
const connections: SseConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const th of hosts.splice(0)) await th.destroy();
});

async function host(options: Parameters<typeof startTestHost>[0] = {}): Promise<TestHost> {
  const th = await startTestHost({ sinks: [{ type: "sse" }], ...options });
  hosts.push(th);
  return th;
}

async function open(th: TestHost, query: Record<string, string> = {}, lastEventId?: string): Promise<SseConnection> {
  const connection = await openSse(th.url, query, { lastEventId });
  connections.push(connection);
  return connection;
}

async function commit(th: TestHost, ...changes: ["ADDED" | "MODIFIED" | "DELETED", KubeObject][]): Promise<void> {
  for (const [type, object] of changes) await th.changes.apply(object.kind === "Node" ? "nodes" : "pods", type, object);
  await th.changes.flush();
}

function rawNode(name: string): KubeObject {
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: { name, uid: `uid-${name}`, resourceVersion: "1" },
    status: { addresses: [{ type: "InternalIP", address: "10.1.0.1" }] },
  };
}

const names = (events: SseEvent[]) =>
  events.filter((e) => e.type !== "RESET" && e.type !== "SYNCED").map((e) => `${e.type} ${json(e).name}`);

describe("GET /v1/watch", () => {
  test("without a resume point: RESET, the current state as ADDED, SYNCED, then live updates", async () => {
    const th = await host();
    await commit(
      th,
      ["ADDED", rawPod("web-1", { node: "n1" })],
      ["ADDED", rawPod("web-2", { node: "n2" })],
      ["MODIFIED", rawPod("web-1", { node: "n1", phase: "Failed", rv: "2" })],
    );
    const c = await open(th);
    expect(c.status).toBe(200);
    expect(c.response.headers.get("content-type")).toStartWith("text/event-stream");
    expect(c.response.headers.get("cache-control")).toBe("no-cache");

    const initial = await c.takeUntil("SYNCED");
    expect(initial.map((e) => e.type)).toEqual(["RESET", "ADDED", "ADDED", "SYNCED"]);
    expect(json(initial[0]!)).toMatchObject({
      epoch: th.host.epoch,
      stream: "all",
      reason: "no resume point",
      code: "no-resume-point",
    });
    expect(new Set(names(initial))).toEqual(new Set(["ADDED web-1", "ADDED web-2"]));
    const web1 = initial.map((e) => json(e)).find((d) => d.name === "web-1")!;
    expect(web1).toMatchObject({ version: 3, type: "ADDED", node: "n1", object: { status: { phase: "Failed" } } });
    // RESET clears the last event id and snapshot events carry none: a reconnect during the snapshot starts over.
    expect(initial.slice(0, 3).map((e) => e.lastEventId)).toEqual(["", "", ""]);
    expect(initial[3]!.lastEventId).toBe(`${th.host.epoch}:3`);
    expect(json(initial[3]!)).toMatchObject({ version: 3, stream: "all" });

    await commit(th, ["DELETED", rawPod("web-2", { node: "n2", rv: "3" })], ["ADDED", rawPod("web-3", { node: "n1" })]);
    const deleted = await c.next();
    const added = await c.next();
    expect([deleted.type, json(deleted).name, deleted.lastEventId]).toEqual(["DELETED", "web-2", `${th.host.epoch}:4`]);
    expect(json(deleted)).toMatchObject({ version: 4, prev: 3, stream: "all", epoch: th.host.epoch });
    expect([added.type, json(added).name, added.lastEventId]).toEqual(["ADDED", "web-3", `${th.host.epoch}:5`]);
  });

  test("a reconnect in the middle of the snapshot gets a whole new snapshot", async () => {
    const th = await host();
    await commit(
      th,
      ...Array.from({ length: 20 }, (_, i) => ["ADDED", rawPod(`web-${i}`, { node: "n1" })] as ["ADDED", KubeObject]),
    );
    const first = await open(th);
    await first.next();
    const { lastEventId } = await first.next();
    first.close();
    expect(lastEventId).toBe("");
    const again = await open(th, {}, lastEventId || undefined);
    const events = await again.takeUntil("SYNCED");
    expect(events[0]!.type).toBe("RESET");
    expect(versionsOf(events)).toHaveLength(20);
  });

  test("a node stream and the kinds and namespace filters, in the snapshot and live", async () => {
    const th = await host();
    await commit(
      th,
      ["ADDED", rawNode("n1")],
      ["ADDED", rawPod("a", { node: "n1" })],
      ["ADDED", rawPod("b", { node: "n2" })],
      ["ADDED", rawPod("c", { node: "n1", namespace: "kube-system" })],
    );
    const node = await open(th, { stream: "node/n1" });
    const nodePods = await open(th, { stream: "node/n1", kinds: "Pod", namespace: "default" });
    const nodes = await open(th, { kinds: "Node,Namespace" });
    expect(new Set(names(await node.takeUntil("SYNCED")))).toEqual(new Set(["ADDED n1", "ADDED a", "ADDED c"]));
    expect(names(await nodePods.takeUntil("SYNCED"))).toEqual(["ADDED a"]);
    expect(names(await nodes.takeUntil("SYNCED"))).toEqual(["ADDED n1"]);

    await commit(
      th,
      ["ADDED", rawPod("d", { node: "n2" })],
      ["ADDED", rawPod("e", { node: "n1", namespace: "kube-system" })],
      ["ADDED", rawPod("f", { node: "n1" })],
    );
    const e = await node.next();
    expect(json(e)).toMatchObject({ name: "e", stream: "node/n1", version: 6, prev: 4 });
    expect(json(await node.next())).toMatchObject({ name: "f", version: 7, prev: 6 });
    expect(json(await nodePods.next())).toMatchObject({ name: "f" });
    await commit(th, [
      "MODIFIED",
      { ...rawNode("n1"), metadata: { name: "n1", uid: "uid-n1", resourceVersion: "2", labels: { zone: "a" } } },
    ]);
    expect(json(await nodes.next())).toMatchObject({ kind: "Node", type: "MODIFIED", version: 8 });
    // Updates arrive in version order: what the filters dropped would have come before.
    expect(names(nodePods.events)).toEqual(["ADDED a", "ADDED f"]);
  });

  test("a resume point (Last-Event-ID, or ?since=) gets the missed updates, SYNCED, then live", async () => {
    const th = await host();
    await commit(
      th,
      ["ADDED", rawPod("a", { node: "n1" })],
      ["ADDED", rawPod("b", { node: "n1" })],
      ["ADDED", rawPod("c", { node: "n1" })],
    );
    const epoch = th.host.epoch;
    const byHeader = await open(th, { since: `${epoch}:0` }, `${epoch}:1`);
    const bySince = await open(th, { since: `${epoch}:2` });
    const events = await byHeader.takeUntil("SYNCED");
    expect(events.map((e) => e.type)).toEqual(["ADDED", "ADDED", "SYNCED"]);
    expect(versionsOf(events)).toEqual([2, 3]);
    expect(events[2]!.lastEventId).toBe(`${epoch}:3`);
    expect(versionsOf(await bySince.takeUntil("SYNCED"))).toEqual([3]);
    // The header wins over the URL's `since`, even one that would be refused on its own.
    const byHeaderOverBadSince = await open(th, { since: "12" }, `${epoch}:1`);
    expect(versionsOf(await byHeaderOverBadSince.takeUntil("SYNCED"))).toEqual([2, 3]);
    await commit(th, ["DELETED", rawPod("a", { node: "n1" })]);
    expect(json(await byHeader.next())).toMatchObject({ type: "DELETED", version: 4 });
  });

  test("resume after a kubemeta restart on the same store: no gap, no duplicate", async () => {
    const th = await host();
    await commit(th, ["ADDED", rawPod("a", { node: "n1" })], ["ADDED", rawPod("b", { node: "n2" })]);
    const before = await open(th);
    await before.takeUntil("SYNCED");
    await commit(th, ["MODIFIED", rawPod("a", { node: "n1", phase: "Failed", rv: "2" })]);
    expect((await before.next()).lastEventId).toBe(`${th.host.epoch}:3`);
    await th.stop();
    await before.ended;
    hosts.splice(hosts.indexOf(th), 1);

    const restarted = await host({ dir: th.dir });
    expect(restarted.host.epoch).toBe(th.host.epoch);
    await commit(restarted, ["ADDED", rawPod("c", { node: "n1" })], ["DELETED", rawPod("b", { node: "n2", rv: "3" })]);
    const after = await open(restarted, {}, before.lastEventId);
    const caughtUp = await after.takeUntil("SYNCED");
    expect(caughtUp.map((e) => e.type)).toEqual(["ADDED", "DELETED", "SYNCED"]);
    expect(versionsOf(caughtUp)).toEqual([4, 5]);
    await commit(restarted, ["ADDED", rawPod("d", { node: "n1" })]);
    const live = await after.next();
    expect(json(live)).toMatchObject({ version: 6, prev: 5, name: "d" });
    expect([...versionsOf(before.events), ...versionsOf(after.events)].toSorted((x, y) => x - y)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
  });

  test("a resume point of another epoch, ahead of the log, or older than retention gets RESET", async () => {
    const th = await host({ retention: { maxUpdates: 2, interval: 50 } });
    await commit(
      th,
      ...Array.from({ length: 6 }, (_, i) => ["ADDED", rawPod(`p${i}`, { node: "n1" })] as ["ADDED", KubeObject]),
    );
    await waitFor(() => th.host.log.oldest() > 2, 5000, "retention to prune");
    const epoch = th.host.epoch;
    const cases: [string, string, string][] = [
      ["0123456789abcdef:3", "epoch 0123456789abcdef", "other-epoch"],
      [`${epoch}:99`, "ahead of the log", "ahead-of-log"],
      [`${epoch}:1`, "older than retention", "behind-retention"],
    ];
    for (const [lastEventId, reason, code] of cases) {
      const c = await open(th, {}, lastEventId);
      const events = await c.takeUntil("SYNCED");
      expect(events[0]!.type).toBe("RESET");
      expect(json<{ reason: string; code: string }>(events[0]!)).toMatchObject({
        reason: expect.stringContaining(reason),
        code,
      });
      expect(versionsOf(events)).toHaveLength(6);
      expect(events.at(-1)!.lastEventId).toBe(`${epoch}:6`);
    }
    // Counted as every reader's that fell behind retention is, and only that one.
    expect(th.host.metrics.render()).toContain('kubemeta_reader_resets_total{stream="all"} 1');
  });

  test("a resume point a little ahead of this replica's log (another's, further on) is waited for", async () => {
    const th = await host();
    await commit(th, ["ADDED", rawPod("a", { node: "n1" })]);
    const epoch = th.host.epoch;
    const c = await open(th, {}, `${epoch}:3`);
    await commit(th, ["ADDED", rawPod("b", { node: "n1" })], ["ADDED", rawPod("c", { node: "n1" })]);
    const events = await c.takeUntil("SYNCED");
    expect(events.map((e) => [e.type, e.lastEventId])).toEqual([["SYNCED", `${epoch}:3`]]);
    await commit(th, ["ADDED", rawPod("d", { node: "n1" })]);
    expect((await c.next()).lastEventId).toBe(`${epoch}:4`);
  });

  test("bad input: 400 naming the parameter, 404 for an unknown stream, never 500", async () => {
    const th = await host();
    const get = async (query: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${th.url}/v1/watch?${query}`, { headers });
      return [
        response.status,
        response.status === 200 ? "" : ((await response.json()) as { parameter: string }).parameter,
      ];
    };
    expect(await get("stream=everything")).toEqual([404, "stream"]);
    expect(await get("stream=node/")).toEqual([404, "stream"]);
    expect(await get("since=12")).toEqual([400, "since"]);
    expect(await get("since=abc:-1")).toEqual([400, "since"]);
    expect(await get("kinds=pods")).toEqual([400, "kinds"]);
    // No object has such a kind: the stream would stay empty, unsaid.
    expect(await get("kinds=Pod,HttpRoute")).toEqual([400, "kinds"]);
    expect(await get("kinds=Pod,,Node")).toEqual([400, "kinds"]);
    // /v1/objects' spelling is refused, not ignored (which streamed every kind).
    expect(await get("kind=Pod")).toEqual([400, "kind"]);
    expect(await get("namespace=")).toEqual([400, "namespace"]);
    // An unreadable Last-Event-ID is no resume point: the EventSource gets a RESET rather than an error it cannot
    // recover from.
    const c = await open(th, {}, "garbage");
    expect((await c.next()).type).toBe("RESET");
  });

  test("past maxStreams a subscribe gets 503 until a stream closes; the subscribers gauge follows", async () => {
    const th = await host({ sinks: [{ type: "sse", maxStreams: 2 }] });
    const gauge = async () =>
      (await (await fetch(`${th.url}/metrics`)).text())
        .split("\n")
        .filter((l) => l.startsWith("kubemeta_sse_subscribers{"));
    const a = await open(th, { stream: "node/n1" });
    await open(th);
    await a.takeUntil("SYNCED");
    expect(await gauge()).toEqual([
      'kubemeta_sse_subscribers{stream="node"} 1',
      'kubemeta_sse_subscribers{stream="all"} 1',
    ]);
    const refused = await fetch(`${th.url}/v1/watch`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: string }).error).toContain("maxStreams");
    // An EventSource would give up for good on the 503: it gets why, and when to come back, as a stream of 200.
    const eventSource = await fetch(`${th.url}/v1/watch`, { headers: { accept: "text/event-stream" } });
    expect([eventSource.status, await eventSource.text()]).toEqual([
      200,
      ": too many streams (maxStreams is 2); retry later\nretry: 5000\n\n",
    ]);
    a.close();
    await waitFor(
      async () => (await gauge()).includes('kubemeta_sse_subscribers{stream="node"} 0'),
      5000,
      "the closed stream to be gone (its class at 0)",
    );
    const accepted = await open(th);
    expect((await accepted.next()).type).toBe("RESET");
  });

  test("HEAD /v1/watch answers the headers and holds no stream (its body is never read)", async () => {
    const th = await host({ sinks: [{ type: "sse", maxStreams: 1 }] });
    const head = await fetch(`${th.url}/v1/watch`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toStartWith("text/event-stream");
    const metrics = await (await fetch(`${th.url}/metrics`)).text();
    expect(metrics).not.toContain("kubemeta_sse_subscribers{");
    const c = await open(th);
    expect(c.status).toBe(200);
    expect((await c.next()).type).toBe("RESET");
    // With maxStreams open, HEAD says what a GET would get.
    expect((await fetch(`${th.url}/v1/watch`, { method: "HEAD" })).status).toBe(503);
  });
});
