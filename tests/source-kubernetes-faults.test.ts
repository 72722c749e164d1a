/**
 * The kubernetes source under a misbehaving API server: throttling, errors, dropped
 * and stalled watches, watch timeouts, and stops in the middle of everything.
 */
import { describe, expect, test } from "bun:test";
import type { Metrics } from "../sdk/telemetry.ts";
import { makePod, startChurn } from "../simulator/population.ts";
import { count, inSync, RecordingSink, until, withCluster, within } from "./source-kubernetes-recorder.ts";

const newPod = (name: string) =>
  makePod({ name, namespace: "default", node: "ip-10-0-0-1.eu-west-1.compute.internal" });
const restarts = (metrics: Metrics, reason: string) =>
  count(metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason });
const requests = (metrics: Metrics, verb: string, code: string) =>
  count(metrics, "kubemeta_source_requests_total", { verb, resource: "pods", code });

describe("throttling and errors", () => {
  test("429 on a watch waits Retry-After, not the (much shorter) backoff", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", resource: "pods", status: 429, retryAfterSeconds: 1 });
      const sink = new RecordingSink();
      const started = performance.now();
      const running = await start(sink);
      await within(running.synced, 5000, "sync");
      expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
      expect(restarts(running.metrics, "throttled")).toBe(1);
      expect(server.requests()["watchlist pods"]).toBe(2);
      expect(inSync(sink, server, "Pod")).toBe(true);
    }));

  test("429 without Retry-After (a proxy's) is still counted as throttled, and retried after the backoff", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", resource: "pods", status: 429, retryAfterSeconds: null });
      const sink = new RecordingSink();
      const running = await start(sink);
      await within(running.synced, 5000, "sync");
      expect([restarts(running.metrics, "throttled"), restarts(running.metrics, "error")]).toEqual([1, 0]);
      expect(requests(running.metrics, "watch", "429")).toBe(1);
      expect(inSync(sink, server, "Pod")).toBe(true);
    }));

  test("429 on a list page retries that page after Retry-After, in the same relist", () =>
    withCluster(
      async ({ server, start }) => {
        const sink = new RecordingSink();
        let throttledAt = 0;
        sink.onApply = (n) => {
          // The first page is in: the request for the next one is throttled.
          if (n !== 5) return;
          server.failNext({ verb: "list", resource: "pods", status: 429, retryAfterSeconds: 1 });
          throttledAt = performance.now();
        };
        const running = await start(sink, { pageSize: 5 });
        await within(running.synced, 5000, "sync");
        expect(performance.now() - throttledAt).toBeGreaterThanOrEqual(1000);
        expect(server.requests()["list pods"]).toBe(4 + 1);
        expect(sink.relists.map((r) => r.state)).toEqual(["ended"]);
        expect(inSync(sink, server, "Pod")).toBe(true);
      },
      { streamingList: false },
      { nodes: 2, podsPerNode: 10 },
    ));

  test("5xx responses and ERROR events are retried with backoff until the watch succeeds", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", resource: "pods", status: 500, count: 2 });
      server.failNext({ verb: "watch", resource: "pods", status: 503 });
      server.failNext({ verb: "watch", resource: "pods", status: 500, as: "event" });
      const sink = new RecordingSink();
      const running = await start(sink);
      await within(running.synced, 5000, "sync");
      expect(requests(running.metrics, "watch", "500")).toBe(2);
      expect(requests(running.metrics, "watch", "503")).toBe(1);
      expect(requests(running.metrics, "watch", "200")).toBe(2);
      expect(restarts(running.metrics, "error")).toBe(4);
      expect(sink.relists.map((r) => r.state)).toEqual(["aborted", "ended"]);
      expect(inSync(sink, server, "Pod")).toBe(true);
    }));

  /**
   * A failure that sends the source back to list or watch again, over and over: a backoff of 0–50 ms allows about
   * 20 attempts in 500 ms; back to back they are hundreds (the request budget raised out of the way). No event marks
   * "no more than that": a window is watched.
   */
  async function attemptsIn500ms(requests: () => number): Promise<number> {
    await until(() => requests() > 2, "the attempts");
    const before = requests();
    await Bun.sleep(500);
    return requests() - before;
  }
  const looping = { backoff: { initial: "50ms", max: "50ms" }, requestBudget: { qps: 10_000, burst: 10_000 } };

  test("a 410 again and again (a window shorter than a list) relists with backoff, not back to back", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", resource: "pods", status: 410, count: 100_000 });
      const running = await start(new RecordingSink(), looping);
      expect(await attemptsIn500ms(() => server.requests()["watchlist pods"] ?? 0)).toBeLessThan(100);
      expect(restarts(running.metrics, "expired")).toBeGreaterThan(2);
    }));

  test("a 410 after each LIST (as an HTTP status) relists with backoff, not back to back", () =>
    withCluster(
      async ({ server, start }) => {
        server.failNext({ verb: "watch", resource: "pods", status: 410, as: "status", count: 100_000 });
        await start(new RecordingSink(), { ...looping, streamingList: "never" });
        expect(await attemptsIn500ms(() => server.requests()["list pods"] ?? 0)).toBeLessThan(100);
      },
      { streamingList: false },
    ));

  test("a continue token that expires on every list lists again with backoff, not back to back", () =>
    withCluster(
      async ({ server, start }) => {
        server.failNext({ verb: "list", resource: "pods", status: 410, continued: true, count: 100_000 });
        await start(new RecordingSink(), { ...looping, pageSize: 5 });
        expect(await attemptsIn500ms(() => server.requests()["list pods"] ?? 0)).toBeLessThan(100);
      },
      { streamingList: false },
    ));

  test("a 404 for a resource discovery still lists is tried again with backoff, not back to back", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", resource: "pods", status: 404, count: 100_000 });
      await start(new RecordingSink(), looping);
      expect(await attemptsIn500ms(() => server.requests()["watchlist pods"] ?? 0)).toBeLessThan(100);
    }));

  test("the request budget caps a crash loop, whatever the backoff says", () =>
    withCluster(async ({ server, start }) => {
      server.failNext({ verb: "watch", status: 500, count: 10_000 });
      await start(new RecordingSink(), {
        resources: ["pods", "nodes", "namespaces"],
        backoff: { initial: "1ms", max: "1ms" },
        requestBudget: { qps: 10, burst: 3 },
      });
      const started = performance.now();
      const sent = () => Object.values(server.requests()).reduce((a, b) => a + b, 0);
      // Twelve requests take the burst and about 0.9 s of the rate; without the cap they take a few ms.
      await until(() => sent() >= 12, "the crash loop's requests");
      const made = sent();
      const seconds = (performance.now() - started) / 1000;
      expect(made).toBeLessThanOrEqual(3 + Math.ceil(10 * seconds) + 1);
    }));
});

describe("watch connections", () => {
  test("a watch that reaches its timeout is re-opened at once from where it was, without relisting", () =>
    withCluster(async ({ server, start }) => {
      const sink = new RecordingSink();
      const running = await start(sink, { watchTimeout: "1s" });
      await within(running.synced, 5000, "sync");
      server.create(newPod("before-timeout"));
      await until(() => restarts(running.metrics, "end") >= 1, "the watch timeout");
      server.create(newPod("after-timeout"));
      await until(() => inSync(sink, server, "Pod"), "the pod created after the timeout");
      expect(sink.relists).toHaveLength(1);
      expect(restarts(running.metrics, "error")).toBe(0);
    }));

  test("dropped watches under churn reconnect from the last resourceVersion and lose no event", () =>
    withCluster(
      async ({ server, start }) => {
        const sink = new RecordingSink();
        const running = await start(sink);
        await within(running.synced, 5000, "sync");
        const churn = startChurn(server, { perSecond: 400 });
        for (let i = 0; i < 5; i++) {
          await until(() => server.openWatches() === 1, "the watch to be re-opened");
          // Dropped once a dozen of the churn's events went through it: what a drop may lose, this one could.
          const seen = sink.events.length;
          await until(() => sink.events.length >= seen + 12, "events through the re-opened watch");
          server.dropWatches();
        }
        churn.stop();
        await until(() => inSync(sink, server, "Pod"), "the sink to catch up with the server");
        expect(churn.changes()).toBeGreaterThan(50);
        expect(sink.relists).toHaveLength(1);
        // Resumed watches neither replay nor skip: resourceVersions only go up.
        const watched = sink.events.filter((e) => e.via === "watch").map((e) => Number(e.resourceVersion));
        expect(watched.every((rv, i) => i === 0 || rv > watched[i - 1]!)).toBe(true);
        await until(
          () => restarts(running.metrics, "error") + restarts(running.metrics, "end") >= 5,
          "a restart per dropped watch",
        );
      },
      {},
      { nodes: 5, podsPerNode: 10 },
    ));

  test("a watch that delivered is a success: the next drop waits the first backoff step, not a longer one", () =>
    withCluster(async ({ server, start }) => {
      const sink = new RecordingSink();
      // Each reconnect waits at most 500 ms if the count of failures in a row starts over after a working watch; were
      // it to go on counting, the eighth would wait up to 64 s (capped at 60).
      const running = await start(sink, { backoff: { initial: "500ms", max: "60s" } });
      await within(running.synced, 5000, "sync");
      for (let i = 0; i < 8; i++) {
        server.create(newPod(`between-drops-${i}`));
        await until(() => sink.events.some((e) => e.name === `between-drops-${i}`), "the pod through the watch");
        const watches = requests(running.metrics, "watch", "200");
        server.dropWatches();
        await until(
          () => requests(running.metrics, "watch", "200") > watches,
          `the watch re-opened after drop ${i + 1}`,
          2_000,
        );
      }
    }));

  test("an initial sync that hangs says which resources are not synced yet (/readyz's reason)", () =>
    withCluster(async ({ server, start }) => {
      server.stallWatches(true);
      const running = await start(new RecordingSink(), { resources: ["pods", "nodes"] });
      await until(() => running.waiting() === "pods, nodes: not synced yet", "both named while nothing answers");
      server.stallWatches(false);
      await within(running.synced, 5000, "sync once the server answers");
      expect(running.waiting()).toBeUndefined();
    }));

  test("a stalled watch trips the inactivity timeout, reconnects, and resumes when the server does", () =>
    withCluster(async ({ server, start }) => {
      const sink = new RecordingSink();
      const running = await start(sink, { inactivityTimeout: "300ms" });
      await within(running.synced, 5000, "sync");
      server.stallWatches(true);
      await until(
        () => restarts(running.metrics, "inactivity") >= 2,
        "two inactivity timeouts (the open watch, then a new one that never answers)",
      );
      server.stallWatches(false);
      server.create(newPod("after-stall"));
      await until(() => sink.events.some((e) => e.name === "after-stall"), "the pod created after the stall");
      expect(inSync(sink, server, "Pod")).toBe(true);
      expect(sink.relists).toHaveLength(1);
      await until(() => server.openWatches() === 1, "the abandoned watches to be closed");
    }));

  test("a stalled watch on a server bookmarking every 2 s is replaced within seconds, not after 90 s", () => {
    const bookmarkMs = 2000;
    return withCluster(
      async ({ server, start }) => {
        const sink = new RecordingSink();
        const running = await start(sink);
        await within(running.synced, 5000, "sync");
        await until(() => sink.bookmarks.length >= 3, "three bookmarks: two intervals of cadence", 4 * bookmarkMs);
        expect(restarts(running.metrics, "inactivity")).toBe(0);
        server.stallWatches(true);
        const stalledAt = performance.now();
        // 3× the cadence from the last bookmark, which came at most one interval before the stall.
        await until(() => restarts(running.metrics, "inactivity") >= 1, "the stalled watch to be replaced", 10_000);
        expect(performance.now() - stalledAt).toBeLessThan(4 * bookmarkMs + 1000);
        server.stallWatches(false);
        server.create(newPod("after-stall"));
        await until(() => sink.events.some((e) => e.name === "after-stall"), "the pod created after the stall");
        expect(inSync(sink, server, "Pod")).toBe(true);
        expect(sink.relists).toHaveLength(1);
      },
      { bookmarkIntervalMs: bookmarkMs },
    );
  }, 30_000);

  test(
    "a blocked event loop is no stall: the bytes that came meanwhile are read before the timeout counts",
    () =>
      withCluster(async ({ start }) => {
        const sink = new RecordingSink();
        const running = await start(sink);
        await within(running.synced, 5000, "sync");
        await until(() => sink.bookmarks.length >= 3, "three bookmarks: the cadence (the 5 s floor here)");
        // Longer than the adaptive timeout: the server's bookmarks wait in the socket meanwhile.
        const blockedUntil = performance.now() + 6000;
        while (performance.now() < blockedUntil);
        const seen = sink.bookmarks.length;
        await until(() => sink.bookmarks.length > seen + 2, "bookmarks after the block");
        expect(restarts(running.metrics, "inactivity")).toBe(0);
      }),
    30_000,
  );
});

describe("stop", () => {
  test("stop() during a list returns at once, even with the core pushing back, and abandons the relist", () =>
    withCluster(
      async ({ start }) => {
        const sink = new RecordingSink();
        let blocked = false;
        sink.onApply = (n) => {
          if (n < 7) return;
          blocked = true;
          return new Promise<void>(() => {});
        };
        const running = await start(sink, { pageSize: 5 });
        await until(() => blocked, "the list to be under way");
        await within(running.stop(), 1000, "stop during a list");
        expect(sink.relists.map((r) => r.state)).toEqual(["aborted"]);
        expect(running.isSynced()).toBe(false);
      },
      { streamingList: false },
      { nodes: 4, podsPerNode: 10 },
    ));

  test("stop() during a watch closes it and applies nothing after", () =>
    withCluster(async ({ server, start }) => {
      const sink = new RecordingSink();
      // resources: undefined = the default, every resource.
      const running = await start(sink, { resources: undefined });
      await within(running.synced, 5000, "sync");
      expect(server.openWatches()).toBe(11);
      await within(running.stop(), 1000, "stop during a watch");
      await running.stop();
      const seen = sink.events.length;
      server.create(newPod("after-stop"));
      await until(() => server.openWatches() === 0, "the server to see the watches closed");
      expect(sink.events.length).toBe(seen);
    }));
});
