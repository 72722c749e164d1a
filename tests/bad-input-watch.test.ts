/**
 * Bad input, never a crash or a wedge: malformed watch lines and odd objects through the
 * kubernetes source's real Reflector and watch reader (a scripted Requester stands in for
 * HTTP, as in source-kubernetes-watch.test.ts) into the core of a real host (testing/).
 * A bad line ends its watch: the source logs it, re-watches from where it was and keeps
 * going; a change without kind or uid reaches the core, which counts and skips it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { ALL } from "../protocol/streams.ts";
import type { KubeObject } from "../sdk/model.ts";
import { Reflector } from "../plugins/sources/kubernetes/reflector.ts";
import type { Requester, RequestSpec, StreamHandlers } from "../plugins/sources/kubernetes/request.ts";
import { resourceType } from "../plugins/sources/kubernetes/resources.ts";
import { sourceMetrics } from "../plugins/sources/kubernetes/telemetry.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";

const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;
const pod = (name: string, rv: string, extra: Record<string, unknown> = {}): KubeObject => {
  const p = rawPod(name, { rv });
  return { ...p, metadata: { ...p.metadata, ...extra } };
};
const endOfInitialEvents = (rv: string) =>
  line("BOOKMARK", {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { resourceVersion: rv, annotations: { "k8s.io/initial-events-end": "true" } },
  });

/** The API server's limit on one object: 1.5 MiB, almost all of it one annotation. */
const BIG = pod("big", "20", { annotations: { "example.com/blob": "b".repeat(1_572_864 - 600) } });
const UNICODE_NAME = "pöd-日本語-🚀-\u202e";
const UNICODE_LABELS = { "app.kubernetes.io/名前": "值-🚀", "e\u0301": "\u0000\uffff", "": "" };
const UNICODE = pod(UNICODE_NAME, "21", { uid: "uid-unicode", labels: UNICODE_LABELS });

/** What each watch request gets, in order; the last one stays open. */
const WATCHES: string[][] = [
  // 0: the streaming list, a good change, then a line that is not JSON at all.
  [line("ADDED", pod("a", "3")), endOfInitialEvents("4"), line("MODIFIED", pod("a", "5", { labels: { v: "2" } }))],
  ["this is not json {\n"],
  // 1: events the core must skip: without object, without metadata, without uid or kind, with a uid not a string.
  [
    '{"type":"ADDED"}\n',
    line("ADDED", { kind: "Pod" }),
    line("MODIFIED", { metadata: { name: "x", resourceVersion: "6" } }),
    line("ADDED", { kind: "", metadata: { uid: "uid-empty-kind", resourceVersion: "6" } }),
    line("ADDED", { kind: 5, metadata: { uid: "uid-number-kind", resourceVersion: "6" } }),
    line("ADDED", { kind: "Pod", metadata: { uid: 7, resourceVersion: "6" } }),
    line("ADDED", { kind: "Pod", metadata: "not an object" }),
    line("ADDED", pod("b", "7")),
    // A line that is JSON but not an event.
    '{"kind":"Pod","metadata":{"uid":"uid-c"}}\n',
  ],
  ["null\n"],
  ["[1,2,3]\n"],
  ['"a string"\n'],
  [line("ADDED", "an object that is a string")],
  // A type not known: skipped, nothing stored; this watch then ends at once without events, a failure too.
  [line("WHATEVER", pod("w", "8"))],
  [`${line("ADDED", pod("cut", "9")).slice(0, 40)}\n`],
  // An object of another resource on this one's watch (a broken proxy): not this resource's to store.
  [line("ADDED", { ...pod("wrong-kind", "9", { uid: "uid-wrong-kind" }), kind: "Node" })],
  // Odd objects with kind and uid (the first's name is no name: skipped), then the big one (in 64 KiB chunks) and
  // unicode, then a good one.
  [
    line("ADDED", { kind: "Pod", metadata: { uid: "uid-odd-1", name: 42, labels: "not a map", resourceVersion: 10 } }),
    line("ADDED", {
      kind: "Pod",
      metadata: { uid: "uid-odd-2", name: "odd-2", namespace: null, labels: { a: null }, resourceVersion: "11" },
      spec: "not a spec",
      status: [],
    }),
    ...(line("ADDED", BIG).match(/[\s\S]{1,65536}/g) ?? []),
    line("ADDED", UNICODE),
    line("ADDED", pod("z", "100")),
  ],
];
const SKIPPED = { no_uid: 5, no_kind: 2, no_name: 1 };
const BAD_WATCHES = WATCHES.length - 2;

class ScriptedApi implements Requester {
  readonly watches: string[] = [];

  async stream(request: RequestSpec, signal: AbortSignal, handlers: StreamHandlers): Promise<void> {
    const index = this.watches.push(request.path) - 1;
    handlers.onOpen?.();
    for (const chunk of WATCHES[index] ?? []) {
      const pending = handlers.onChunk(new TextEncoder().encode(chunk));
      if (pending) await pending;
    }
    if (index >= WATCHES.length - 1)
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    signal.throwIfAborted();
  }

  async json<T>(): Promise<T> {
    throw new Error("no LIST expected: the server serves streaming lists");
  }
}

let th: TestHost;
const hostLines: string[] = [];
const sourceLines: string[] = [];
const api = new ScriptedApi();
const controller = new AbortController();
let running: Promise<unknown>;

beforeAll(async () => {
  th = await startTestHost({ logger: createLogger({ level: "warn", write: (l) => hostLines.push(l) }) });
  const reflector = new Reflector(
    {
      type: resourceType("pods"),
      scope: {},
      key: "pods",
      pageSize: 500,
      streamingList: "always",
      watchTimeoutMs: 60_000,
      backoff: { initialMs: 5, maxMs: 10 },
    },
    {
      changes: th.changes,
      requester: api,
      metrics: sourceMetrics(createMetrics()),
      // Debug: a failure that repeats the one before it in a run is a debug line (readiness.ts, retryLog).
      logger: createLogger({ level: "debug", write: (l) => sourceLines.push(l) }),
      onSynced: () => {},
    },
  );
  running = reflector.run(controller.signal);
});

afterAll(async () => {
  controller.abort();
  await running;
  await th?.destroy();
});

async function currentUids(): Promise<Set<string>> {
  const updates = await th.host.log.read({ stream: ALL, after: 0, limit: 10_000 });
  const state = new Map<string, string>();
  for (const u of updates) state.set(u.uid, u.type);
  return new Set([...state].filter(([, type]) => type !== "DELETED").map(([uid]) => uid));
}

describe("malformed watch lines and odd objects", () => {
  test("the source logs each bad line, re-watches where it was, and later good events arrive", async () => {
    await waitFor(async () => (await currentUids()).has("uid-z"), 10_000, "the good pod after all the bad lines");
    expect(api.watches).toHaveLength(WATCHES.length);
    // Every re-watch resumes from the last good resourceVersion (no relist, nothing lost).
    expect(api.watches[0]).toContain("sendInitialEvents=true");
    expect(api.watches[1]).toContain("resourceVersion=5");
    for (const path of api.watches.slice(2)) expect(path).not.toContain("sendInitialEvents=true");
    expect(api.watches.at(-1)).toContain("resourceVersion=7");

    const failures = sourceLines.map((l) => JSON.parse(l)).filter((l) => l.msg === "list/watch failed; retrying");
    expect(failures).toHaveLength(BAD_WATCHES);
    for (const failure of failures) expect(failure.error.message).toBeString();

    const uids = await currentUids();
    for (const uid of ["uid-a", "uid-b", "uid-big", "uid-unicode", "uid-z", "uid-odd-2"]) expect(uids).toContain(uid);
    for (const uid of ["uid-c", "uid-w", "uid-cut", "uid-empty-kind", "uid-number-kind", "uid-wrong-kind", "uid-odd-1"])
      expect(uids).not.toContain(uid);
    const objects = await th.host.log.read({ stream: ALL, after: 0, limit: 10_000 });
    const unicode = objects.find((u) => u.uid === "uid-unicode")!;
    expect(unicode.name).toBe(UNICODE_NAME);
    expect((unicode.object.metadata as { labels?: unknown }).labels).toEqual(UNICODE_LABELS);
  });

  test("the core counts what it skipped, logs it, and goes on committing", async () => {
    await waitFor(async () => (await currentUids()).has("uid-z"), 10_000, "the good pod");
    const metrics = th.host.metrics.render();
    expect(metrics).toContain(`kubemeta_changes_rejected_total{reason="no_uid"} ${SKIPPED.no_uid}`);
    expect(metrics).toContain(`kubemeta_changes_rejected_total{reason="no_kind"} ${SKIPPED.no_kind}`);
    expect(metrics).toContain(`kubemeta_changes_rejected_total{reason="no_name"} ${SKIPPED.no_name}`);
    const skipped = hostLines
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === "skipped a change without kind, uid or name");
    expect(skipped).toHaveLength(SKIPPED.no_uid + SKIPPED.no_kind + SKIPPED.no_name);

    // Commits are not wedged: a change after all of it commits at once.
    const head = th.host.log.head();
    await th.changes.apply("pods", "ADDED", rawPod("after", { rv: "101" }));
    await th.changes.flush();
    expect(th.host.log.head()).toBe(head + 1);
    expect(await currentUids()).toContain("uid-after");
  });
});
