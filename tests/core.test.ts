/**
 * The core through a real host: versions, streams and prev chains, no-op suppression,
 * relist diffs, retractions, restarts, and the committed log's reads.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { BehindRetentionError } from "../sdk/contract.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import { rawPod, startTestHost, waitFor, type TestHost, expectGapFreeWithWholeChains } from "../testing/index.ts";

const hosts: TestHost[] = [];
async function host(options: Parameters<typeof startTestHost>[0] = {}) {
  const th = await startTestHost(options);
  hosts.push(th);
  return th;
}
afterEach(async () => {
  for (const th of hosts.splice(0).reverse()) await th.destroy();
});

async function everything(th: TestHost, stream = ALL): Promise<Update[]> {
  return th.host.log.read({ stream, after: 0, limit: 1_000_000 });
}

function rawNamespace(name: string) {
  return {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: { name, uid: `ns-${name}`, resourceVersion: "1" },
    status: { phase: "Active" },
  };
}

describe("versions, streams and prev", () => {
  test("updates are numbered gap-free and routed to all, shared and node streams", async () => {
    const th = await host();
    th.changes.apply("namespaces", "ADDED", rawNamespace("payments"));
    th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "ip-10-0-1-23.eu-west-1.compute.internal" }));
    th.changes.apply("pods", "ADDED", rawPod("web-2", { node: "n2" }));
    th.changes.apply("pods", "ADDED", rawPod("pending-1"));
    await th.changes.flush();

    const all = await everything(th);
    expect(all.map((u) => [u.version, u.name, u.stream])).toEqual([
      [1, "payments", SHARED],
      [2, "web-1", "node/ip-10-0-1-23.eu-west-1.compute.internal"],
      [3, "web-2", "node/n2"],
      [4, "pending-1", null],
    ]);
    expect((await everything(th, "node/n2")).map((u) => u.name)).toEqual(["web-2"]);
    expect((await everything(th, SHARED)).map((u) => u.name)).toEqual(["payments"]);
    expectGapFreeWithWholeChains(all);
  });

  test("a MODIFIED that changes nothing in the slim copy is not an update", async () => {
    const th = await host();
    th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1", rv: "10" }));
    th.changes.apply("pods", "MODIFIED", rawPod("web-1", { node: "n1", rv: "11" }));
    th.changes.apply("pods", "MODIFIED", rawPod("web-1", { node: "n1", rv: "12", phase: "Succeeded" }));
    await th.changes.flush();
    expect((await everything(th)).map((u) => [u.type, u.resourceVersion])).toEqual([
      ["ADDED", "10"],
      ["MODIFIED", "12"],
    ]);
    expect(th.host.metrics.render()).toContain('kubemeta_updates_suppressed_total{kind="Pod"} 1');
  });

  test("the type says what happened to kubemeta's state, whatever the event said", async () => {
    const th = await host();
    th.changes.apply("pods", "MODIFIED", rawPod("a", { node: "n1" }));
    th.changes.apply("pods", "ADDED", rawPod("a", { node: "n1", phase: "Failed" }));
    th.changes.apply("pods", "DELETED", rawPod("never-seen", { node: "n1" }));
    th.changes.apply("pods", "DELETED", rawPod("a", { node: "n1", phase: "Failed" }));
    await th.changes.flush();
    expect((await everything(th)).map((u) => `${u.type} ${u.name}`)).toEqual(["ADDED a", "MODIFIED a", "DELETED a"]);
  });

  test("an unscheduled pod joins its node stream when it is scheduled", async () => {
    const th = await host();
    th.changes.apply("pods", "ADDED", rawPod("p"));
    th.changes.apply("pods", "MODIFIED", rawPod("p", { node: "n1" }));
    await th.changes.flush();
    const node = await everything(th, "node/n1");
    expect(node.map((u) => [u.type, u.version, u.streamPrev])).toEqual([["MODIFIED", 2, 0]]);
  });

  test("malformed changes are counted and skipped, not fatal", async () => {
    const th = await host();
    th.changes.apply("pods", "ADDED", { kind: "Pod", metadata: { name: "no-uid" } });
    th.changes.apply("pods", "ADDED", rawPod("ok", { node: "n1" }));
    await th.changes.flush();
    expect((await everything(th)).map((u) => u.name)).toEqual(["ok"]);
    expect(th.host.metrics.render()).toContain('kubemeta_changes_rejected_total{reason="no_uid"} 1');
  });
});

describe("relist", () => {
  test("only true differences become updates, DELETED included for what vanished", async () => {
    const th = await host();
    for (const name of ["keep", "change", "vanish"])
      th.changes.apply("pods", "ADDED", rawPod(name, { node: "n1", rv: "5" }));
    th.changes.apply("namespaces", "ADDED", rawNamespace("other-kind-untouched"));
    await th.changes.flush();

    const relist = th.changes.relist("pods", "Pod");
    th.changes.apply("pods", "ADDED", rawPod("keep", { node: "n1", rv: "5" }));
    th.changes.apply("pods", "ADDED", rawPod("change", { node: "n1", rv: "9", phase: "Failed" }));
    th.changes.apply("pods", "ADDED", rawPod("new", { node: "n2", rv: "9" }));
    await relist.end("10");

    const after = (await everything(th)).slice(4);
    expect(after.map((u) => `${u.type} ${u.name}`)).toEqual(["MODIFIED change", "ADDED new", "DELETED vanish"]);
    const tombstone = after[2]!;
    expect(tombstone.stream).toBe("node/n1");
    expect((tombstone.object.metadata as { name: string }).name).toBe("vanish");
    // README's envelope: the deletion was never seen, only that it came before the list's resourceVersion.
    expect(tombstone.resourceVersion).toBe("10");
    expect(th.changes.resumePoint("pods")).toBe("10");
    expect(th.host.metrics.render()).toContain('kubemeta_retracted_objects_total{kind="Pod",reason="relist"} 1');
  });

  test("items of a relist do not move the resume point until it ends; an aborted relist deletes nothing", async () => {
    const th = await host();
    th.changes.apply("pods", "ADDED", rawPod("a", { node: "n1", rv: "3" }));
    await th.changes.flush();
    expect(th.changes.resumePoint("pods")).toBe("3");
    const relist = th.changes.relist("pods", "Pod");
    th.changes.apply("pods", "ADDED", rawPod("b", { node: "n1", rv: "7" }));
    await th.changes.flush();
    expect(th.changes.resumePoint("pods")).toBe("3");
    relist.abort();
    th.changes.bookmark("pods", "8");
    await th.changes.flush();
    expect(th.changes.resumePoint("pods")).toBe("8");
    expect((await everything(th)).map((u) => `${u.type} ${u.name}`)).toEqual(["ADDED a", "ADDED b"]);
  });
});

describe("retract", () => {
  test(
    "DELETED for the stored objects of the kind last relisted under the key, at their own resourceVersion, and its " +
      "resume point forgotten, for good; a kind relisted since under another key is that key's, and kept",
    async () => {
      const crd = "kubernetes/example.com/v1/foobars";
      const narrow = "kubernetes/core/v1/pods?namespace=kube-system";
      const wide = "kubernetes/core/v1/pods";
      const first = await host();
      const fooBar = (name: string, rv: string) => ({
        kind: "FooBar",
        apiVersion: "example.com/v1",
        metadata: { name, namespace: "default", uid: `fb-${name}`, resourceVersion: rv },
      });
      const relist = async (key: string, kind: string, objects: KubeObject[], rv: string) => {
        const listing = first.changes.relist(key, kind);
        for (const object of objects) first.changes.apply(key, "ADDED", object);
        await listing.end(rv);
      };
      await relist(crd, "FooBar", [fooBar("a", "6"), fooBar("b", "7")], "10");
      await relist(narrow, "Pod", [rawPod("system-1", { node: "n1", rv: "11" })], "12");
      await relist(wide, "Pod", [rawPod("system-1", { node: "n1", rv: "11" })], "13");
      const head = first.host.log.head();

      await first.changes.retract(crd);
      await first.changes.retract(narrow);
      const updates = (await everything(first)).slice(head);
      expect(updates.map((u) => `${u.type} ${u.name} ${u.resourceVersion}`).sort()).toEqual([
        "DELETED a 6",
        "DELETED b 7",
      ]);
      expect(first.changes.resumePoint(crd, "FooBar")).toBeUndefined();
      expect(first.changes.resumePoint(narrow)).toBeUndefined();
      expect(first.changes.resumePoint(wide, "Pod")).toBe("13");
      const metrics = first.host.metrics.render();
      expect(metrics).toContain('kubemeta_retracted_objects_total{kind="FooBar",reason="not-served"} 2');
      expect(metrics).not.toContain('kind="Pod",reason="not-served"');
      await first.changes.retract(crd);
      expect(first.host.log.head()).toBe(head + 2);
      await first.stop();

      // Not synced: once synced, it would retract what no source of its own claimed (the wide pods) at any moment.
      const second = await host({ dir: first.dir, holdSync: true });
      expect(second.changes.resumePoint(crd, "FooBar")).toBeUndefined();
      expect((await second.host.log.snapshot({})).objects.map((o) => o.name)).toEqual(["system-1"]);
    },
  );
});

describe("scopes", () => {
  test("a relist under a new scope while the old one is retracted as unwatched: what it listed stays", async () => {
    const narrow = "kubernetes/core/v1/pods?namespace=kube-system";
    const wide = "kubernetes/core/v1/pods";
    const first = await host();
    const listing = first.changes.relist(wide, "Pod");
    for (const name of ["system-1", "payments-1"])
      first.changes.apply(wide, "ADDED", rawPod(name, { node: "n1", rv: "20" }));
    await listing.end("20");
    await first.stop();

    // Restarted on the narrow scope alone: its relist is under way when the source syncs and the wide one, which no
    // source asks about now, is retracted.
    const lines: string[] = [];
    const second = await host({
      dir: first.dir,
      holdSync: true,
      logger: createLogger({ write: (l) => void lines.push(l) }),
    });
    const relisting = second.changes.relist(narrow, "Pod");
    second.changes.apply(narrow, "ADDED", rawPod("system-1", { node: "n1", rv: "20" }));
    second.synced();
    await relisting.end("30");
    await waitFor(() => lines.some((line) => line.includes("retracted a resource")), 5_000, "the wide scope retracted");
    await second.changes.flush();
    expect((await second.host.log.snapshot({})).objects.map((o) => o.name)).toEqual(["system-1"]);
    const updates = await everything(second);
    expect(updates.map((u) => `${u.type} ${u.name}`)).toEqual([
      "ADDED system-1",
      "ADDED payments-1",
      "DELETED payments-1",
    ]);
  });

  test(
    "a kind relisted under another resource key (another scope) since a key's resume point was recorded: " +
      "that key lists again, and its relist deletes what the other scope added",
    async () => {
      const narrow = "kubernetes/core/v1/pods?namespace=kube-system";
      const wide = "kubernetes/core/v1/pods";
      const first = await host();
      const relist = async (key: string, names: string[], rv: string) => {
        const listing = first.changes.relist(key, "Pod");
        for (const name of names) first.changes.apply(key, "ADDED", rawPod(name, { node: "n1", rv }));
        await listing.end(rv);
      };
      await relist(narrow, ["system-1"], "10");
      expect(first.changes.resumePoint(narrow, "Pod")).toBe("10");
      await relist(wide, ["system-1", "payments-1"], "20");
      expect(first.changes.resumePoint(narrow, "Pod")).toBeUndefined();
      expect(first.changes.resumePoint(wide, "Pod")).toBe("20");
      // Without a kind, the key's own resume point, as before.
      expect(first.changes.resumePoint(narrow)).toBe("10");
      await first.stop();

      // Kept in the store: back to the narrow scope after a restart, it lists again.
      const second = await host({ dir: first.dir });
      expect(second.changes.resumePoint(narrow, "Pod")).toBeUndefined();
      expect(second.changes.resumePoint(wide, "Pod")).toBe("20");
      const listing = second.changes.relist(narrow, "Pod");
      second.changes.apply(narrow, "ADDED", rawPod("system-1", { node: "n1", rv: "20" }));
      await listing.end("30");
      expect(second.changes.resumePoint(narrow, "Pod")).toBe("30");
      expect(second.changes.resumePoint(wide, "Pod")).toBeUndefined();
      await second.changes.flush();
      // Whether the wide key's objects are retracted as unwatched before this relist or after it, payments-1 ends
      // deleted and system-1, listed under the narrow key, in the state.
      const updates = await everything(second);
      expect(updates.filter((u) => u.name === "payments-1").map((u) => u.type)).toEqual(["ADDED", "DELETED"]);
      expect((await second.host.log.snapshot({})).objects.map((o) => o.name)).toEqual(["system-1"]);
    },
  );
});

describe("restart", () => {
  test("versions, prev chains, resume points and the no-op diff survive a restart", async () => {
    const first = await startTestHost();
    first.changes.apply("pods", "ADDED", rawPod("a", { node: "n1", rv: "4" }));
    first.changes.apply("pods", "ADDED", rawPod("b", { node: "n1", rv: "5" }));
    await first.changes.flush();
    const epoch = first.host.epoch;
    await first.stop();

    const second = await host({ dir: first.dir });
    expect(second.host.epoch).toBe(epoch);
    expect(second.changes.resumePoint("pods")).toBe("5");
    second.changes.apply("pods", "MODIFIED", rawPod("a", { node: "n1", rv: "6" }));
    second.changes.apply("pods", "MODIFIED", rawPod("b", { node: "n1", rv: "7", phase: "Failed" }));
    await second.changes.flush();
    const all = await everything(second);
    expect(all.map((u) => `${u.version} ${u.type} ${u.name}`)).toEqual(["1 ADDED a", "2 ADDED b", "3 MODIFIED b"]);
    expectGapFreeWithWholeChains(all);
  });
});

describe("committed log", () => {
  test("follow delivers the backlog, then live commits, in order", async () => {
    const th = await host();
    th.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
    await th.changes.flush();
    const seen: number[] = [];
    const ac = new AbortController();
    const following = (async () => {
      for await (const batch of th.host.log.follow({ stream: "node/n1", after: 0, signal: ac.signal })) {
        seen.push(...batch.map((u) => u.version));
      }
    })();
    await waitFor(() => seen.length === 1);
    th.changes.apply("pods", "ADDED", rawPod("other-node", { node: "n2" }));
    th.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
    await waitFor(() => seen.length === 2);
    ac.abort();
    await following;
    expect(seen).toEqual([1, 3]);
  });

  test("a reader behind retention is told so (and counted)", async () => {
    const th = await host({ retention: { maxUpdates: 2, interval: "50ms" } });
    for (let i = 0; i < 5; i++) th.changes.apply("pods", "ADDED", rawPod(`p${i}`, { node: "n1" }));
    await th.changes.flush();
    await waitFor(() => th.host.log.oldest() === 4, 5000, "retention to prune");
    await expect(th.host.log.read({ stream: ALL, after: 1, limit: 10 })).rejects.toBeInstanceOf(BehindRetentionError);
    expect((await th.host.log.read({ stream: ALL, after: 3, limit: 10 })).map((u) => u.version)).toEqual([4, 5]);
    expect(th.host.metrics.render()).toContain('kubemeta_reader_resets_total{stream="all"} 1');
  });

  test("reads older than the in-memory tail come from the store, identical", async () => {
    const th = await host();
    for (let i = 0; i < 20; i++) th.changes.apply("pods", "ADDED", rawPod(`p${i}`, { node: `n${i % 3}` }));
    await th.changes.flush();
    const fromMemory = await th.host.log.read({ stream: "node/n1", after: 0, limit: 100 });
    await th.stop();
    const restarted = await host({ dir: th.dir });
    const fromStore = await restarted.host.log.read({ stream: "node/n1", after: 0, limit: 100 });
    expect(fromStore).toEqual(fromMemory);
  });
});
