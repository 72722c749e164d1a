/**
 * What the test API server cannot act out: a server that ignores `sendInitialEvents`
 * (older than v1.19, or a proxy in between) and odd framing of watch lines. A scripted
 * Requester stands in for HTTP; the Reflector and the watch reader are the real ones.
 */
import { describe, expect, test } from "bun:test";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import type { KubeObject } from "../sdk/model.ts";
import { Reflector, type StreamingListMode } from "../plugins/sources/kubernetes/reflector.ts";
import { ApiError } from "../kube/status.ts";
import type { Requester, RequestSpec, StreamHandlers } from "../plugins/sources/kubernetes/request.ts";
import { resourceType } from "../plugins/sources/kubernetes/resources.ts";
import { sourceMetrics } from "../plugins/sources/kubernetes/telemetry.ts";
import { RecordingSink, until } from "./source-kubernetes-recorder.ts";

const pod = (name: string, rv: string): KubeObject => ({
  kind: "Pod",
  apiVersion: "v1",
  metadata: { name, namespace: "default", uid: `uid-${name}`, resourceVersion: rv },
});
const line = (type: string, object: KubeObject) => `${JSON.stringify({ type, object })}\n`;
const bookmark = (rv: string, initialEventsEnd = false) =>
  line("BOOKMARK", {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      resourceVersion: rv,
      ...(initialEventsEnd ? { annotations: { "k8s.io/initial-events-end": "true" } } : {}),
    },
  });

/**
 * What the scripted server answers to one watch request: an error, or chunks then (optionally) silence until aborted,
 * or for `endAfterMs` before the watch ends cleanly (as at its timeoutSeconds).
 */
type WatchAnswer = { error: Error } | { chunks: string[]; thenHang?: boolean; endAfterMs?: number };

class ScriptedApi implements Requester {
  readonly watches: string[] = [];
  readonly lists: string[] = [];
  constructor(
    private readonly answerWatch: (path: string, index: number) => WatchAnswer,
    private readonly listItems: KubeObject[] = [],
    private readonly listVersion = "100",
  ) {}

  async stream(request: RequestSpec, signal: AbortSignal, handlers: StreamHandlers): Promise<void> {
    this.watches.push(request.path);
    const answer = this.answerWatch(request.path, this.watches.length - 1);
    if ("error" in answer) throw answer.error;
    handlers.onOpen?.();
    for (const chunk of answer.chunks) {
      const pending = handlers.onChunk(new TextEncoder().encode(chunk));
      if (pending) await pending;
    }
    if (answer.thenHang) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    if (answer.endAfterMs) await Bun.sleep(answer.endAfterMs);
    signal.throwIfAborted();
  }

  async json<T>(request: RequestSpec): Promise<T> {
    this.lists.push(request.path);
    // List items carry no kind or apiVersion, as from a real server.
    const items = this.listItems.map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest);
    return { metadata: { resourceVersion: this.listVersion }, items } as T;
  }
}

function reflect(
  api: ScriptedApi,
  streamingList: StreamingListMode,
  sink = new RecordingSink(),
  watchTimeoutMs = 60_000,
) {
  const type = resourceType("pods");
  let synced = 0;
  sink.claimKind("pods", type.kind); // as follow() does before it starts a reflector
  const metrics = createMetrics();
  const reflector = new Reflector(
    {
      type,
      scope: {},
      key: "pods",
      pageSize: 500,
      streamingList,
      watchTimeoutMs,
      backoff: { initialMs: 10, maxMs: 20 },
    },
    {
      changes: sink,
      requester: api,
      metrics: sourceMetrics(metrics),
      logger: silentLogger,
      onSynced: () => synced++,
    },
  );
  const controller = new AbortController();
  const running = reflector.run(controller.signal);
  return {
    sink,
    metrics,
    synced: () => synced,
    async stop() {
      controller.abort();
      await running;
    },
  };
}

const isStreamingList = (path: string) => path.includes("sendInitialEvents=true");
const resumesFrom = (rv: string) => (path: string) => path.includes(`resourceVersion=${rv}`) && !isStreamingList(path);

describe("a server that ignores sendInitialEvents", () => {
  const cases: Array<[string, string[]]> = [
    ["a BOOKMARK without the initial-events-end annotation", [line("ADDED", pod("a", "3")), bookmark("5")]],
    [
      "a MODIFIED before the initial-events-end bookmark",
      [line("ADDED", pod("a", "3")), line("MODIFIED", pod("a", "6"))],
    ],
  ];
  for (const [what, chunks] of cases) {
    test(`is detected by ${what}; auto falls back to paginated LIST`, async () => {
      const api = new ScriptedApi(
        (path) => (isStreamingList(path) ? { chunks, thenHang: true } : { chunks: [], thenHang: true }),
        [pod("a", "3"), pod("b", "4")],
      );
      const run = reflect(api, "auto");
      try {
        await until(() => api.watches.some(resumesFrom("100")), "the watch from the list's resourceVersion");
        expect(api.watches.filter(isStreamingList)).toHaveLength(1);
        expect(api.lists).toHaveLength(1);
        expect(run.sink.relists.map((r) => r.state)).toEqual(["aborted", "ended"]);
        expect(run.sink.relists[1]!.resourceVersion).toBe("100");
        expect([...run.sink.state("Pod").keys()].sort()).toEqual(["uid-a", "uid-b"]);
        expect(run.sink.violations).toEqual([]);
        expect(run.synced()).toBe(1);
      } finally {
        await run.stop();
      }
    });
  }

  test("is detected by a plain watch, answered at once, that stays empty until its timeout ends it", async () => {
    // watchTimeout 1s asks for timeoutSeconds=1; the watch is open 950 ms, past 90 % of it.
    const api = new ScriptedApi(
      (path) => (isStreamingList(path) ? { chunks: [], endAfterMs: 950 } : { chunks: [], thenHang: true }),
      [pod("a", "3")],
    );
    const run = reflect(api, "auto", new RecordingSink(), 1000);
    try {
      await until(() => api.watches.some(resumesFrom("100")), "the watch from the list's resourceVersion");
      expect(api.watches.filter(isStreamingList)).toHaveLength(1);
      expect(api.lists).toHaveLength(1);
      expect(run.synced()).toBe(1);
    } finally {
      await run.stop();
    }
  });

  test("streamingList: always keeps asking for a streaming list after a 422", async () => {
    const refused = new ApiError(422, "Invalid", "sendInitialEvents is forbidden");
    const api = new ScriptedApi(() => ({ error: refused }));
    const run = reflect(api, "always");
    try {
      await until(() => api.watches.length >= 3, "three attempts");
      expect(api.watches.every(isStreamingList)).toBe(true);
      expect(api.lists).toHaveLength(0);
      expect(run.synced()).toBe(0);
    } finally {
      await run.stop();
    }
  });
});

describe("watch framing", () => {
  test(
    "keep-alive whitespace, lines cut anywhere, a last line without newline, " + "and events after the initial state",
    async () => {
      const stream = [
        " \n",
        line("ADDED", pod("a", "3")),
        bookmark("4", true),
        line("MODIFIED", pod("a", "5")),
        line("DELETED", pod("a", "6")).trimEnd(),
      ].join("");
      // Cut into 7-byte chunks: through JSON strings, between lines, inside the newline runs.
      const chunks = stream.match(/[\s\S]{1,7}/g)!;
      const api = new ScriptedApi((_path, index) => (index === 0 ? { chunks } : { chunks: [], thenHang: true }));
      const run = reflect(api, "auto");
      try {
        await until(() => api.watches.length === 2, "the re-watch after the stream ended");
        expect(api.watches[1]).toContain("resourceVersion=6");
        expect(run.sink.events.map((e) => `${e.type} ${e.resourceVersion} ${e.via}`)).toEqual([
          "ADDED 3 relist",
          "MODIFIED 5 watch",
          "DELETED 6 watch",
        ]);
        expect(run.sink.relists.map((r) => `${r.state} ${r.resourceVersion}`)).toEqual(["ended 4"]);
        expect(run.sink.resumePoints.get("pods")).toBe("6");
      } finally {
        await run.stop();
      }
    },
  );

  /**
   * Watches the reflector opens in 200 ms once it retries: a backoff of 0–20 ms allows about 20; a hot loop makes
   * hundreds or thousands. No event marks "no more than that": a window is watched.
   */
  async function watchesIn200ms(api: ScriptedApi): Promise<number> {
    await until(() => api.watches.length > 2, "the watch to be opened again");
    const before = api.watches.length;
    await Bun.sleep(200);
    return api.watches.length - before;
  }

  test("a 410 right after each streaming list's initial state relists with backoff, not in a hot loop", async () => {
    const gone = line("ERROR", {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason: "Expired",
      code: 410,
      metadata: {},
    } as KubeObject);
    const api = new ScriptedApi(() => ({ chunks: [line("ADDED", pod("a", "3")), bookmark("4", true), gone] }));
    const run = reflect(api, "auto");
    try {
      expect(await watchesIn200ms(api)).toBeLessThan(80);
      expect(api.watches.every(isStreamingList)).toBe(true);
    } finally {
      await run.stop();
    }
  });

  for (const reason of ["Expired", "Gone"])
    test(`an ERROR whose Status says ${reason} without a code relists, as client-go does on the reason`, async () => {
      const expired = line("ERROR", {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        reason,
        message: "too old resource version: 4 (9)",
        metadata: {},
      } as KubeObject);
      const api = new ScriptedApi((path, index) =>
        index === 0
          ? { chunks: [line("ADDED", pod("a", "3")), bookmark("4", true)] }
          : isStreamingList(path)
            ? { chunks: [line("ADDED", pod("a", "3")), bookmark("9", true)], thenHang: true }
            : { chunks: [expired] },
      );
      const run = reflect(api, "auto");
      try {
        await until(() => api.watches.length >= 3, "a watch after the ERROR");
        expect(resumesFrom("4")(api.watches[1]!)).toBe(true);
        expect(isStreamingList(api.watches[2]!)).toBe(true);
        expect(run.metrics.render()).toContain(
          'kubemeta_source_watch_restarts_total{reason="expired",resource="pods"} 1',
        );
      } finally {
        await run.stop();
      }
    });

  test("a watch that ends at once with nothing in it is retried with backoff, not in a hot loop", async () => {
    const api = new ScriptedApi((path) =>
      isStreamingList(path)
        ? { chunks: [line("ADDED", pod("a", "3")), bookmark("4", true)], thenHang: false }
        : { chunks: [] },
    );
    const run = reflect(api, "auto");
    try {
      expect(await watchesIn200ms(api)).toBeLessThan(80);
    } finally {
      await run.stop();
    }
  });
});

describe("the event loop while a chunk of events is applied", () => {
  test("gets a turn within a long run: applying a chunk of 600 objects does not hold it to the end", async () => {
    const objects = 600;
    const lines = Array.from({ length: objects }, (_, i) => line("ADDED", pod(`p${i}`, String(10 + i))));
    const api = new ScriptedApi((path) =>
      isStreamingList(path)
        ? { chunks: [lines.join("") + bookmark(String(10 + objects), true)], thenHang: true }
        : { chunks: [], thenHang: true },
    );
    const sink = new RecordingSink();
    /** How many objects were applied when a callback queued at the first one got to run. */
    let appliedWhenLoopRan: number | undefined;
    sink.onApply = (count) => {
      if (count === 1) setImmediate(() => (appliedWhenLoopRan = sink.events.length));
      // Each apply takes 0.1 ms, as applying a real object on a loaded machine can: the run takes 60 ms in all.
      const until = performance.now() + 0.1;
      while (performance.now() < until);
    };
    const run = reflect(api, "auto", sink);
    try {
      await until(() => run.synced() === 1, "the streaming list's end");
      expect(sink.events).toHaveLength(objects);
      // All 600 arrived in one chunk: a loop that ran only once the chunk was applied would say 600.
      expect(appliedWhenLoopRan).toBeLessThan(objects / 4);
    } finally {
      await run.stop();
    }
  });
});
