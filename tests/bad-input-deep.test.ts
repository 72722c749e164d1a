/**
 * Custom resources and BOOKMARKs nested deeper than a thread's stack, through a hostile front of the test API server
 * (whose own serializer recurses, so the front puts the depth in on the wire) into a real host whose slim rule keeps
 * `spec`, its watch lines parsed on a parse thread. Copying such a subtree overflows the stack: the object is refused
 * and said, never a resource wedged on it; a BOOKMARK is read for its resourceVersion alone.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { createLogger } from "../host/logger.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { forward, front, kubeconfigFor, prepended } from "./http-front.ts";
import { FAST_DISCOVERY, FOOBARS, GVR, fooBar, ready } from "./source-kubernetes-crd-fixtures.ts";

/** Deeper than any thread's stack copies (a Worker's gives out near 20,000 levels, the main thread's near 30,000). */
const DEPTH = 200_000;
const DEEP = `${'{"a":'.repeat(DEPTH)}1${"}".repeat(DEPTH)}`;
const MARK = '"deep-here"';

/** The response with MARK replaced by DEEP in each line (watch lines, list bodies): the front's own serializer. */
function deepened(response: Response): Response {
  if (!response.body) return response;
  const decoder = new TextDecoder();
  let carry = "";
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, string>({
      transform(chunk, out) {
        const text = carry + decoder.decode(chunk, { stream: true });
        const end = text.lastIndexOf("\n") + 1;
        carry = text.slice(end);
        if (end > 0) out.enqueue(text.slice(0, end).replaceAll(MARK, DEEP));
      },
      flush(out) {
        if (carry) out.enqueue(carry.replaceAll(MARK, DEEP));
      },
    }),
  );
  const headers = new Headers(response.headers);
  headers.delete("content-length");
  return new Response(body.pipeThrough(new TextEncoderStream()), { status: response.status, headers });
}

let server: TestApiServer;
let proxy: ReturnType<typeof front>["proxy"];
let host: TestHost;
let dir: string;
const lines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  server = await startTestApiServer({ bookmarkIntervalMs: 100, tls: false });
  server.installResource(FOOBARS);
  server.create(fooBar("kept", "first"));
  ({ proxy } = front(server, async (request, upstream) => {
    const answer = await forward(request, upstream);
    const from = upstream.searchParams.get("resourceVersion");
    // Every resumed watch begins with a BOOKMARK as deep, at the resourceVersion it resumes from.
    const bookmark = `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"${from}"},"spec":${MARK}}}\n`;
    return deepened(from === null ? answer : prepended(answer, bookmark));
  }));
  dir = await tempDir();
  const kubeconfig = await kubeconfigFor(dir, proxy.url.href.replace(/\/$/, ""), server.token);
  const source = { type: "kubernetes", kubeconfig, resources: [GVR], backoff: { initial: "20ms", max: "200ms" } };
  host = await startTestHost({
    extra: { sources: [{ ...source, ...FAST_DISCOVERY }], slim: { kinds: { FooBar: { keep: ["spec"] } } } },
    logger: createLogger({ level: "warn", write: (line) => lines.push(JSON.parse(line)) }),
  });
  await ready(host);
});

afterAll(async () => {
  await host?.destroy();
  proxy?.stop(true);
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const objects = async () =>
  ((await (await fetch(`${host.url}/v1/objects?kind=FooBar`)).json()) as { items: Envelope[] }).items;
const deep = (name: string) => ({ ...fooBar(name), spec: { nested: JSON.parse(MARK) } });

test("an object nested deeper than the stack is refused and said; its resource goes on, its DELETED too", async () => {
  server.update(deep("kept"));
  server.create(deep("refused"));
  server.create(fooBar("after"));
  await waitFor(async () => (await objects()).some((o) => o.name === "after"), 10_000, "the object after them");

  // The object keeps the last state it could be copied in; the new one is not stored.
  const stored = await objects();
  expect(stored.map((o) => o.name).sort()).toEqual(["after", "kept"]);
  expect((stored.find((o) => o.name === "kept")!.object.spec as { prop1: string }).prop1).toBe("first");
  const metrics = await (await fetch(`${host.url}/metrics`)).text();
  expect(metrics).toContain('kubemeta_changes_rejected_total{reason="too_deep"} 2');
  const refused = lines.filter((line) => line.msg === "skipped an object nested too deeply to copy what slim keeps");
  expect(refused.map((line) => [line.type, line.name])).toEqual([
    ["MODIFIED", "kept"],
    ["ADDED", "refused"],
  ]);
  expect(lines.filter((line) => line.msg === "list/watch failed; retrying")).toEqual([]);

  // Its deletion is one all the same: the tombstone needs no copy of the spec.
  server.delete("FooBar", "default", "kept");
  await waitFor(async () => !(await objects()).some((o) => o.name === "kept"), 10_000, "the DELETED of kept");
});

test("a BOOKMARK nested deeper than a clone goes, on each resumed watch: its parse thread lives on", async () => {
  server.dropWatches();
  server.create(fooBar("after-bookmark"));
  await waitFor(async () => (await objects()).some((o) => o.name === "after-bookmark"), 10_000, "the object after it");
  const failed = lines.filter((line) => line.msg === "list/watch failed; retrying");
  expect(failed.map((line) => (line.error as { message: string }).message)).not.toContainEqual(
    expect.stringContaining("parse thread"),
  );
});
