/**
 * An API server that answers as no kube-apiserver does, in front of the test API server: a redirect to another host,
 * a list whose continue token comes back, a watch kept open past its timeout, a Status of odd shape, a body that is
 * no JSON. The source neither takes another host's answer for the cluster's nor pages in a circle (each is a failed
 * request, retried after a backoff), nor stays on one watch for good, reads a Status for what it can, and says what
 * came instead of JSON.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import {
  count,
  inSync,
  RecordingSink,
  type RunningSource,
  until,
  withCluster,
  within,
} from "./source-kubernetes-recorder.ts";
import { makePod } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { forward, front, kubeconfigFor } from "./http-front.ts";
import { behindFront, leading } from "./source-kubernetes-front.ts";

test("a LIST answered with a redirect to another host is a failed request: nothing listed there is taken", () =>
  withCluster(
    async ({ server, kubeconfig, start }) => {
      // Another host that would answer an empty list: taken for the cluster's, every pod would be deleted.
      const elsewhere = front(server, () => Response.json({ kind: "PodList", metadata: { resourceVersion: "1" } }));
      const redirecting = front(server, (request, upstream) =>
        upstream.pathname.endsWith("/pods") && !upstream.searchParams.has("watch")
          ? Response.redirect(`${elsewhere.proxy.url.href}api/v1/pods`, 302)
          : forward(request, upstream),
      );
      try {
        const sink = new RecordingSink();
        const config = join(kubeconfig, "..");
        const file = await kubeconfigFor(config, redirecting.proxy.url.href.replace(/\/$/, ""), server.token);
        const running = await start(sink, { kubeconfig: file, streamingList: "never" });
        await waitFor(() => redirecting.requests.filter((r) => r.startsWith("/api/v1/pods?")).length >= 3, 5_000);
        expect(elsewhere.requests).toEqual([]);
        expect(running.isSynced()).toBeFalse();
        expect(sink.relists.filter((relist) => relist.state === "ended")).toEqual([]);
      } finally {
        redirecting.proxy.stop(true);
        elsewhere.proxy.stop(true);
      }
    },
    { tls: false },
  ));

const oversizedRestarts = (running: RunningSource) =>
  count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "oversized" });
const overdueRestarts = (running: RunningSource) =>
  count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "overdue" });

test("a list whose continue token comes back is listed again after a backoff, not paged in a circle", () =>
  behindFront(
    // Every continuation answered as the first page, whose token leads to the first page again.
    (request, upstream) => {
      upstream.searchParams.delete("continue");
      return forward(request, upstream);
    },
    async ({ start }, circling, kubeconfig) => {
      const sink = new RecordingSink();
      await start(sink, { kubeconfig, streamingList: "never", pageSize: 2, backoff: { initial: "300ms" } });
      const given = () => sink.relists.filter((relist) => relist.state === "aborted").length >= 2;
      await within(waitFor(given, 10_000), 10_000, "two lists given up");
      // Each list given up at its first token that came back: two pages, then the next list after a backoff.
      const lists = circling.requests.filter((r) => r.startsWith("/api/v1/pods?") && !r.includes("watch="));
      expect(lists.length).toBeLessThanOrEqual(2 * sink.relists.length);
    },
  ));

test("a watch whose headers never come is given up at the same bound, not the inactivity timeout's", () =>
  behindFront(
    // The streaming list is answered; every watch after it waits for headers that never come.
    (request, upstream) =>
      upstream.searchParams.has("watch") && !upstream.searchParams.has("sendInitialEvents")
        ? new Promise<Response>(() => {})
        : forward(request, upstream),
    async ({ start }, _holding, kubeconfig) => {
      const running = await start(new RecordingSink(), { kubeconfig, watchTimeout: "1s" });
      await within(running.synced, 5000, "the first sync");
      // Each given up 1.25 × 1 s + 2 s after it was sent (the inactivity timeout is 90 s).
      await within(
        waitFor(() => overdueRestarts(running) >= 2, 12_000),
        12_000,
        "two watches given up as overdue",
      );
    },
  ));

test("a watch kept open past its timeoutSeconds is ended and opened again where it was", () =>
  behindFront(
    // A front that drops the parameter: the test API server then keeps each watch open for half an hour.
    (request, upstream) => {
      upstream.searchParams.delete("timeoutSeconds");
      return forward(request, upstream);
    },
    async ({ server, start }, keeping, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig, watchTimeout: "1s" });
      await within(running.synced, 5000, "the first sync");
      const watches = () =>
        keeping.requests.filter((r) => r.startsWith("/api/v1/pods?") && r.includes("watch=")).length;
      // Each ended 1.25 × 1 s + 2 s after it opened: the third opens within ~7 s.
      await within(
        waitFor(() => watches() >= 3, 12_000),
        12_000,
        "two watches ended as overdue",
      );
      expect(overdueRestarts(running)).toBeGreaterThanOrEqual(2);
      // Resumed where it was: a pod made now arrives on the watch that follows, with no relist.
      const relists = sink.relists.length;
      server.create(makePod({ name: "after-overdue", namespace: "default", node: "n-1" }));
      await within(
        waitFor(() => inSync(sink, server, "Pod"), 5_000),
        5_000,
        "the new pod",
      );
      expect(sink.relists.length).toBe(relists);
    },
  ));

test("a 410 ERROR whose Status has causes that are no list is read as a 410: the resource is listed again", () =>
  behindFront(
    leading(
      JSON.stringify({
        type: "ERROR",
        object: { kind: "Status", code: 410, reason: "Expired", message: "too old", details: { causes: "none" } },
      }),
    ),
    async ({ server, start }, _front, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig });
      await within(running.synced, 5000, "the first sync");
      // Every resumed watch is told its resourceVersion expired: only a relist gets what changed since.
      server.dropWatches();
      server.create(makePod({ name: "after-expired", namespace: "default", node: "n-1" }));
      await within(
        waitFor(() => inSync(sink, server, "Pod"), 5_000),
        5_000,
        "the pod through a relist",
      );
      expect(
        count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "expired" }),
      ).toBeGreaterThan(0);
    },
  ));

test.each([
  ["text/html; charset=utf-8", "<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n"],
  ["application/vnd.kubernetes.protobuf;stream=watch", "k8s\u0000\n\u000f\n\u0002v1"],
])("a 200 answered with Content-Type %s is said as such, not as JSON that does not parse", (type, body) =>
  behindFront(
    // A proxy's login page, or a server that ignores Accept: application/json, for every request of pods.
    (request, upstream) =>
      upstream.pathname === "/api/v1/pods"
        ? new Response(body, { headers: { "Content-Type": type } })
        : forward(request, upstream),
    async ({ start }, _front, kubeconfig) => {
      const running = await start(new RecordingSink(), { kubeconfig });
      await until(() => running.waiting()?.includes("failing") ?? false, "the reason of pods");
      expect(running.waiting()).toBe(
        `pods: list/watch failing, retrying: the API server answered 200 with Content-Type ${type}, not JSON ` +
          "(a proxy's page, or a server that ignores Accept: application/json)",
      );
    },
  ),
);

test("a watch line that never ends is given up past 128 MiB, and the watch opened again where it was", () => {
  let endless = true;
  const mebibyte = new Uint8Array(1 << 20).fill(0x61);
  return behindFront(
    // Each resumed watch of pods, while `endless`: a line without its end, a mebibyte at a time up to 200 (bounded
    // for a run without the limit), then silence.
    async (request, upstream) => {
      if (!(endless && upstream.pathname === "/api/v1/pods" && upstream.searchParams.has("resourceVersion")))
        return forward(request, upstream);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull: (out) => (sent++ < 200 ? out.enqueue(mebibyte) : new Promise<void>(() => {})),
      });
      return new Response(body, { headers: { "Content-Type": "application/json" } });
    },
    async ({ server, start }, _front, kubeconfig) => {
      const sink = new RecordingSink();
      const running = await start(sink, { kubeconfig });
      await within(running.synced, 5000, "the first sync");
      server.dropWatches();
      await within(
        waitFor(() => oversizedRestarts(running) >= 2, 10_000),
        10_000,
        "the endless line given up",
      );
      endless = false;
      server.create(makePod({ name: "after-endless", namespace: "default", node: "n-1" }));
      await within(
        waitFor(() => inSync(sink, server, "Pod"), 10_000),
        10_000,
        "the pod after it",
      );
    },
  );
});
