/**
 * Identities that are not well-formed Unicode: uids, names and node names holding a lone surrogate, which JSON can
 * carry as a `\ud800` escape (the test API server writes them so; no Go encoder does) but no UTF-8 text can. The
 * store's columns are UTF-8 text, where each would become U+FFFD: two objects one row, a name not the object's own.
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { createLogger } from "../host/logger.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { makePod } from "../simulator/population.ts";
import type { TestApiServer } from "../simulator/index.ts";
import { rawPod, startTestHost, tempDir, type TestHost, waitFor } from "../testing/index.ts";
import { readiness, ready, withServer } from "./source-kubernetes-crd-fixtures.ts";

let host: TestHost;
const lines: Array<Record<string, unknown>> = [];

const pod = (name: string, uid: string, node = "n-1") => {
  const made = makePod({ name, namespace: "default", node });
  return { ...made, metadata: { ...made.metadata, uid } };
};

test("a uid, name or node that is no well-formed Unicode is refused and said; the well-formed are kept", () =>
  withServer(async (server: TestApiServer, source) => {
    server.create(pod("high", "uid-\ud800"));
    server.create(pod("low", "uid-\udc00"));
    server.create(pod("name-\ud800", "uid-name"));
    server.create(pod("on-odd-node", "uid-node", "n-\udfff"));
    server.create(pod("pair-😀", "uid-pair-😀", "n-1"));
    server.create(pod("plain", "uid-plain"));
    const dir = await tempDir();
    try {
      host = await startTestHost({
        dir,
        extra: { sources: [source(["pods"])] },
        logger: createLogger({ level: "warn", write: (line) => lines.push(JSON.parse(line)) }),
      });
      await ready(host);
      const { items } = (await (await fetch(`${host.url}/v1/objects`)).json()) as { items: Envelope[] };
      expect(items.map((item) => item.uid).sort()).toEqual(["uid-pair-😀", "uid-plain"]);
      const metrics = await (await fetch(`${host.url}/metrics`)).text();
      expect(metrics).toContain('kubemeta_changes_rejected_total{reason="ill_formed"} 4');
      const refused = lines.filter((line) => line.msg === "skipped a change whose identity is no well-formed Unicode");
      expect(refused).toHaveLength(4);
    } finally {
      await host?.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  }));

test("a list's or bookmark's ill-formed resourceVersion is not kept: kubemeta starts again on its store", async () => {
  const dir = await tempDir();
  try {
    let th = await startTestHost({ dir });
    const relist = th.changes.relist("pods", "Pod");
    await th.changes.apply("pods", "ADDED", rawPod("a", { rv: "3" }));
    await relist.end("4\ud800");
    await th.changes.bookmark("pods", "5\udc00");
    await th.changes.flush();
    await th.stop();
    // Read back, such a resume point panicked libSQL: the process aborted at each start.
    th = await startTestHost({ dir });
    expect(th.changes.resumePoint("pods", "Pod")).toBeUndefined();
    expect(th.host.log.head()).toBe(1);
    await th.stop();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a resource whose kind discovery gives as no well-formed Unicode is not watched: kubemeta starts again", () =>
  withServer(async (server, source) => {
    const widgets = { group: "example.com", version: "v1", resource: "widgets", namespaced: true };
    server.installResource({ ...widgets, kind: "Wid\ud800get" });
    const dir = await tempDir();
    const entry = { sources: [source(["pods", "example.com/v1/widgets"])] };
    try {
      let th = await startTestHost({ dir, extra: entry });
      const reason = "example.com/v1/widgets (served with a kind that is no well-formed Unicode)";
      await waitFor(async () => (await readiness(th)).waiting.some((waiting) => waiting.includes(reason)), 5000);
      await th.stop();
      // Kinds are stored (the resource each was last listed under): read back, such a one panicked libSQL.
      th = await startTestHost({ dir, extra: entry });
      await waitFor(async () => (await readiness(th)).waiting.some((waiting) => waiting.includes(reason)), 5000);
      await th.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }));
