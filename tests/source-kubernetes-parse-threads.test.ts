/**
 * Parse threads (plugins/sources/kubernetes/parse-threads.ts): watch lines parsed, skimmed and prepared on Workers
 * must give the core exactly what it makes of the same lines on its own thread (plain JSON.parse, then
 * core/prepare.ts): the same slim JSON text, digest, stream and identity, on the real captures and on every kind the
 * simulator makes; in the order of the stream, however it is cut into chunks and spread over threads; and a failure
 * (a bad line, an ERROR event, a preparer that cannot load) stops the watch with a clear error, never a silent gap.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import type { PreparedChange, PreparerSpec } from "../sdk/prepared.ts";
import type { KubeObject } from "../sdk/model.ts";
import { prepareChange } from "../core/prepare.ts";
import type { SlimOptions } from "../core/slim/rules.ts";
import { LineSplitter } from "../plugins/sources/kubernetes/lines.ts";
import type { LineKind, ParsedEvent } from "../plugins/sources/kubernetes/events.ts";
import { owned, ParsedInOrder, ParseThreads } from "../plugins/sources/kubernetes/parse-threads.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";

const REAL = new URL("./fixtures/k8s/real/", import.meta.url);
const PREPARE_MODULE = new URL("../core/prepare.ts", import.meta.url).href;
/** Rules that reach every part of a prepared change: kept annotations, a kept path, a node-bound custom kind. */
const SLIM: SlimOptions = {
  annotationAllowList: ["kubernetes.io/*"],
  kinds: { Pod: { keep: ["spec.priorityClassName"] }, FooBar: { node: "spec.nodeName" } },
};

/** What the core makes of a line on its own thread: plain JSON.parse, then prepareChange, minus the parsed copy. */
function expectedEvent(line: string, lineKind: LineKind): unknown {
  const event = JSON.parse(line) as { type: string; object: KubeObject };
  if (event.type === "BOOKMARK") {
    // Its resourceVersion and initial-events-end annotation alone: all the watch reads of it.
    const { resourceVersion, annotations } = event.object.metadata ?? {};
    return { type: event.type, object: { metadata: { resourceVersion, ...(annotations ? { annotations } : {}) } } };
  }
  event.object.kind ??= lineKind.kind;
  event.object.apiVersion ??= lineKind.apiVersion;
  const { object: _, ...change } = prepareChange(event.object, SLIM) as PreparedChange & { object?: unknown };
  return { type: event.type, change };
}

/** `text` through a LineSplitter and the threads, cut into chunks of `sizes` bytes in turn; the events applied. */
async function throughThreads(threads: ParseThreads, text: string, lineKind: LineKind, sizes: number[]) {
  const applied: ParsedEvent[] = [];
  const failures: unknown[] = [];
  const inOrder = new ParsedInOrder(
    threads,
    lineKind,
    (events) => {
      applied.push(...events);
    },
    (error) => failures.push(error),
  );
  const splitter = new LineSplitter();
  const bytes = new TextEncoder().encode(text);
  for (let at = 0, turn = 0; at < bytes.length; turn++) {
    const size = sizes[turn % sizes.length]!;
    await inOrder.push(splitter.push(owned(bytes.subarray(at, at + size))));
    at += size;
  }
  await inOrder.push(splitter.rest());
  await inOrder.finish();
  expect(failures).toEqual([]);
  return applied;
}

const spec = (module = PREPARE_MODULE): PreparerSpec => ({ module, options: SLIM });

describe("parse threads", () => {
  let threads: ParseThreads;
  let server: TestApiServer;
  beforeAll(async () => {
    threads = new ParseThreads(2, spec());
    server = await startTestApiServer();
    populate(server, { nodes: 20, podsPerNode: 30, namespaces: 4 });
  });
  afterAll(() => {
    threads.close();
    server.stop();
  });

  test("the real watch captures: every change prepared as the core prepares it on its own thread", async () => {
    let lines = 0;
    for (const dir of await readdir(REAL)) {
      for (const file of (await readdir(new URL(`${dir}/`, REAL))).filter((name) => name.endsWith(".ndjson"))) {
        const text = await Bun.file(new URL(`${dir}/${file}`, REAL)).text();
        const lineKind = file.includes("pods")
          ? { kind: "Pod", apiVersion: "v1" }
          : { kind: "FooBar", apiVersion: "example.com/v1" };
        const expected = text
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line) => expectedEvent(line, lineKind));
        expect(await throughThreads(threads, text, lineKind, [65_536])).toEqual(expected as ParsedEvent[]);
        lines += expected.length;
      }
    }
    expect(lines).toBeGreaterThan(10);
  });

  test("every kind the simulator makes, real-size pods with managedFields, cut at every kind of boundary", async () => {
    const kinds = ["Node", "Namespace", "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"];
    kinds.push("Service", "EndpointSlice", "CronJob", "Job");
    for (const kind of kinds) {
      const items = server.list(kind);
      expect(items.length).toBeGreaterThan(0);
      // Keep-alive lines between events, as a server writes them.
      const lines = items.map((item, i) => JSON.stringify({ type: i % 3 === 0 ? "MODIFIED" : "ADDED", object: item }));
      const text = `${lines.join("\n \n")}\n`;
      const lineKind = { kind, apiVersion: String(items[0]!.apiVersion ?? "v1") };
      const expected = lines.map((line) => expectedEvent(line, lineKind));
      // Chunks of 1 byte (inside characters and lines), of odd sizes, and larger than many lines.
      for (const sizes of [[1, 7, 4093], [9_001], [300_000]])
        expect(await throughThreads(threads, text, lineKind, sizes)).toEqual(expected as ParsedEvent[]);
    }
  });

  test("a line that is not JSON ends the run: the events before it are applied, the watch fails with why", async () => {
    const applied: ParsedEvent[] = [];
    const failures: unknown[] = [];
    const inOrder = new ParsedInOrder(
      threads,
      { kind: "Pod", apiVersion: "v1" },
      (events) => {
        for (const event of events) {
          if (event.type === "invalid") throw new Error(event.message);
          applied.push(event);
        }
      },
      (error) => failures.push(error),
    );
    const pod = server.list("Pod")[0]!;
    const good = JSON.stringify({ type: "ADDED", object: pod });
    const splitter = new LineSplitter();
    const bytes = new TextEncoder().encode(`${good}\n{"type":"ADDED","object":{\n${good}\n`);
    await inOrder.push(splitter.push(owned(bytes)));
    const failed = await inOrder.finish().then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failed?.message).toMatch(/JSON/);
    expect(applied.map((event) => event.type)).toEqual(["ADDED"]);
    expect(failures).toEqual([failed]);
    // Nothing is taken after a failure.
    expect(() => inOrder.push(splitter.push(owned(new TextEncoder().encode(`${good}\n`))))).toThrow(failed!.message);
  });

  test("a parse thread that dies fails what it had, and the next parse runs on a new thread", async () => {
    const crashing = new ParseThreads(1, spec(new URL("./fixtures/crashing-preparer.ts", import.meta.url).href));
    const lineKind = { kind: "Namespace", apiVersion: "v1" };
    const line = (name: string) =>
      JSON.stringify({ type: "ADDED", object: { ...server.list("Namespace")[0], metadata: { name, uid: name } } });
    try {
      const failed = await crashing.parse(lineKind, [new TextEncoder().encode(line("crash-me"))]).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failed?.message).toMatch(/^a parse thread (failed|stopped)/);
      const events = await crashing.parse(lineKind, [new TextEncoder().encode(line("after"))]);
      expect(events).toEqual([expectedEvent(line("after"), lineKind)] as ParsedEvent[]);
    } finally {
      crashing.close();
    }
  });

  test("a preparer that cannot be loaded fails every parse with a clear error", async () => {
    const broken = new ParseThreads(1, spec(new URL("./no-such-preparer.ts", import.meta.url).href));
    try {
      const failed = await broken.parse({ kind: "Pod", apiVersion: "v1" }, [new TextEncoder().encode("{}")]).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failed?.message).toContain("cannot load the core's preparer");
    } finally {
      broken.close();
    }
  });
});
