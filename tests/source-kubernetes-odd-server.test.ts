/**
 * An API server (or a proxy in front of it) that sends what kube-apiserver never does, through a front of the test
 * API server: a watch event of a type not known, a LIST page or error body that never ends, a resourceVersion no API
 * server writes. Nothing of it wedges a resource or grows memory without bound: such an event is skipped and counted,
 * and the watch goes on; such a page is given up, counted, and the list begun again after a backoff; of such an error
 * body its first MiB is read; such a resourceVersion is not resumed from.
 */
import { expect, test } from "bun:test";
import { count, inSync, RecordingSink, until, within } from "./source-kubernetes-recorder.ts";
import { forward } from "./http-front.ts";
import { behindFront, leading } from "./source-kubernetes-front.ts";
import { makePod } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";

test("a watch event of a type not known is skipped and counted, and the watch goes on", () =>
  behindFront(
    // What a later API version or a proxy might send, at the start of every resumed watch.
    leading(JSON.stringify({ type: "RESYNC", object: { kind: "Pod", metadata: { resourceVersion: "1" } } })),
    async ({ server, start }, through, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig });
      await within(running.synced, 5000, "the first sync");
      server.dropWatches();
      server.create(makePod({ name: "after-unknown", namespace: "default", node: "n-1" }));
      await within(
        waitFor(() => inSync(sink, server, "Pod"), 5_000),
        5_000,
        "the pod on the watch that began with it",
      );
      const rejected = { reason: "unknown_event_type" };
      expect(count(running.metrics, "kubemeta_changes_rejected_total", rejected)).toBe(1);
      // The watch that began with it is the one that delivered the pod: one resumed watch, still open.
      const resumed = through.requests.filter((r) => r.startsWith("/api/v1/pods?") && r.includes("resourceVersion="));
      expect(resumed).toHaveLength(1);
    },
  ));

test("a LIST page that never ends is given up past 256 MiB, counted, and the list begun again", () => {
  let endless = true;
  // Whole items, 4 MiB at a time: a page that is JSON as far as it goes.
  const item = `${JSON.stringify(makePod({ name: "same", namespace: "default", node: "n-1" }))},`;
  const part = new TextEncoder().encode(item.repeat(Math.ceil((4 << 20) / item.length)));
  const head = new TextEncoder().encode(
    '{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[',
  );
  return behindFront(
    // Each LIST of pods, while `endless`: its items without end, up to 300 MiB (bounded for a run without the limit),
    // then silence.
    (request, upstream) => {
      if (!(endless && upstream.pathname === "/api/v1/pods" && !upstream.searchParams.has("watch")))
        return forward(request, upstream);
      let sent = -1;
      const body = new ReadableStream<Uint8Array>({
        pull: (out) => (sent++ < 75 ? out.enqueue(sent === 0 ? head : part) : new Promise<void>(() => {})),
      });
      return new Response(body, { headers: { "Content-Type": "application/json" } });
    },
    async ({ server, start }, _front, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig, streamingList: "never", backoff: { initial: "1s" } });
      const oversized = { resource: "pods", reason: "oversized" };
      await until(
        () => count(running.metrics, "kubemeta_source_watch_restarts_total", oversized) >= 1,
        "the page given up",
        20_000,
      );
      expect(running.waiting()).toBe(
        "pods: list/watch failing, retrying: a LIST page of pods ran past 256 MiB: given up " +
          "(if its objects are that large, lower pageSize)",
      );
      endless = false;
      await within(running.synced, 20_000, "the list after it");
      await until(() => inSync(sink, server, "Pod"), "the pods", 5_000);
    },
  );
}, 45_000);

/** What no API server writes: a lone surrogate (sent as U+FFFD), a control character, a URL's worth of digits. */
const UNUSABLE = [
  ["a lone surrogate", "12\ud800"],
  ["a control character", "12\u0007"],
  ["100,000 digits", "9".repeat(1e5)],
];
const resumedFrom = (requests: string[]) =>
  requests.flatMap((r) =>
    r.startsWith("/api/v1/pods?") ? [new URLSearchParams(r.split("?")[1]).get("resourceVersion")] : [],
  );

test.each(UNUSABLE)("a bookmark with %s is not resumed from: the next watch is from the last good one", (_, rv) => {
  let first = true;
  return behindFront(
    // The first resumed watch of pods: that bookmark alone, then its end.
    async (request, upstream) => {
      const resumed = upstream.pathname === "/api/v1/pods" && upstream.searchParams.has("resourceVersion");
      if (!(resumed && first)) return forward(request, upstream);
      first = false;
      const line = JSON.stringify({ type: "BOOKMARK", object: { kind: "Pod", metadata: { resourceVersion: rv } } });
      return new Response(`${line}\n`, { headers: { "Content-Type": "application/json" } });
    },
    async ({ server, start }, through, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig });
      await within(running.synced, 5000, "the first sync");
      server.dropWatches();
      await until(() => !first, "the bookmark");
      server.create(makePod({ name: "after-bookmark", namespace: "default", node: "n-1" }));
      await until(() => inSync(sink, server, "Pod"), "the pod on the watch after it");
      for (const from of resumedFrom(through.requests)) expect(from ?? "").toMatch(/^\d*$/);
    },
  );
});

/** The first list of pods, paginated or streaming, answered with a lone surrogate for its resourceVersion. */
const LISTS: Array<[string, "never" | "always", (answer: Response) => Promise<Response>]> = [
  [
    "a paginated list",
    "never",
    async (answer) => {
      const list = (await answer.json()) as { metadata: { resourceVersion: string } };
      list.metadata.resourceVersion = "12\ud800";
      return Response.json(list);
    },
  ],
  [
    "a streaming list",
    "always",
    async (answer) => {
      await answer.body?.cancel();
      const metadata = { resourceVersion: "12\ud800", annotations: { "k8s.io/initial-events-end": "true" } };
      const line = JSON.stringify({ type: "BOOKMARK", object: { kind: "Pod", metadata } });
      return new Response(`${line}\n`, { headers: { "Content-Type": "application/json" } });
    },
  ],
];

test.each(LISTS)("%s whose resourceVersion no API server writes is given up, and listed again", (_, mode, odd) => {
  let first = true;
  return behindFront(
    async (request, upstream) => {
      const answer = await forward(request, upstream);
      const list = upstream.pathname === "/api/v1/pods" && !upstream.searchParams.has("resourceVersion");
      if (!(first && list)) return answer;
      first = false;
      return odd(answer);
    },
    async ({ server, start }, through, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig, streamingList: mode });
      await within(running.synced, 5000, "the sync by the second list");
      expect(sink.relists.map((relist) => relist.state)).toEqual(["aborted", "ended"]);
      server.create(makePod({ name: "after-list", namespace: "default", node: "n-1" }));
      await until(() => inSync(sink, server, "Pod"), "the pod on the watch after it");
      for (const from of resumedFrom(through.requests)) expect(from ?? "").toMatch(/^\d*$/);
    },
  );
});

test("a stored resume point no API server writes (an earlier kubemeta stored them) is listed from, not watched", () =>
  behindFront(forward, async ({ start }, through, kubeconfig) => {
    const sink = new RecordingSink();
    sink.resumePoints.set("kubernetes/core/v1/pods", "12\u0007");
    const running = await start(sink, { kubeconfig });
    await within(running.synced, 5000, "the sync by a list");
    expect(sink.relists.map((relist) => relist.state)).toEqual(["ended"]);
    for (const from of resumedFrom(through.requests)) expect(from ?? "").toMatch(/^\d*$/);
  }));

test("an error whose body never ends is read to its first MiB, said, and retried after the backoff", () => {
  const part = new Uint8Array(4 << 20).fill(0x78);
  return behindFront(
    // Every request of pods: a 500 whose body is 300 MiB of `x` (bounded for a run without the limit), then silence.
    (request, upstream) => {
      if (upstream.pathname !== "/api/v1/pods") return forward(request, upstream);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull: (out) => (sent++ < 75 ? out.enqueue(part) : new Promise<void>(() => {})),
      });
      return new Response(body, { status: 500, headers: { "Content-Type": "text/plain" } });
    },
    async ({ start }, through, kubeconfig) => {
      const running = await start(new RecordingSink(), { kubeconfig, backoff: { initial: "100ms" } });
      const pods = () => through.requests.filter((r) => r.startsWith("/api/v1/pods?")).length;
      await until(() => pods() >= 3, "three requests, each failed", 10_000);
      expect(running.waiting()).toBe(`pods: list/watch failing, retrying: 500 Unknown: ${"x".repeat(500)}`);
    },
  );
}, 30_000);

test("a Status whose message is 900 KiB is said cut to its first 1,000 characters", () =>
  behindFront(
    // Every request of pods: a 500 whose Status message is 900 KiB of `m` (under the bound on an error's body).
    (request, upstream) =>
      upstream.pathname === "/api/v1/pods"
        ? Response.json({ kind: "Status", code: 500, reason: "InternalError", message: "m".repeat(900 << 10) }, 500)
        : forward(request, upstream),
    async ({ start }, _front, kubeconfig) => {
      const running = await start(new RecordingSink(), { kubeconfig });
      await until(() => running.waiting()?.includes("failing") ?? false, "the reason of pods");
      expect(running.waiting()).toBe(
        `pods: list/watch failing, retrying: 500 InternalError: ${"m".repeat(1000)}… (${900 << 10} characters)`,
      );
    },
  ));
