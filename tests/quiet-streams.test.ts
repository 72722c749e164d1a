/**
 * A quiet stream outlives retention: retention removes old updates of the whole log, but a reader of one stream that
 * had no update among them missed nothing, and resumes without a reset (each stream's horizon: Store.horizons).
 * A node agent whose node saw no change for longer than retention keeps (every restart of kubemeta, every reconnect)
 * its position instead of taking its node's state again with every other agent at once.
 */
import { afterAll, expect, test } from "bun:test";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { openSse } from "./sse-client.ts";

const hosts: TestHost[] = [];
afterAll(() => Promise.all(hosts.map((th) => th.destroy())));

/** Version 1 on the quiet node; then a busy node whose pods change until retention has pruned past it. */
async function prunedPastQuiet(): Promise<TestHost> {
  const th = await startTestHost({ sinks: [{ type: "sse" }], retention: { maxUpdates: 20, interval: "20ms" } });
  hosts.push(th);
  await th.changes.apply("pods", "ADDED", rawPod("still", { node: "quiet" }));
  for (let round = 0; round < 5; round++)
    for (let i = 0; i < 10; i++)
      await th.changes.apply("pods", "MODIFIED", rawPod(`busy-${i}`, { node: "busy", phase: `p${round}` }));
  await th.changes.flush();
  await waitFor(() => th.host.log.oldest() > 30, 5_000, "retention to prune past the quiet node's update");
  return th;
}

test("a quiet stream's position older than the log's horizon resumes over SSE and /v1/updates, no reset", async () => {
  const th = await prunedPastQuiet();
  const { epoch } = th.host;
  expect(th.host.log.horizon("node/quiet")).toBe(0);

  const quiet = await openSse(th.url, { stream: "node/quiet" }, { lastEventId: `${epoch}:1` });
  try {
    const caughtUp = await quiet.takeUntil("SYNCED");
    expect(caughtUp.map((e) => [e.type, e.lastEventId])).toEqual([["SYNCED", `${epoch}:${th.host.log.head()}`]]);
  } finally {
    quiet.close();
  }
  const page = await fetch(`${th.url}/v1/updates?stream=node/quiet&since=${epoch}:1`);
  expect(page.status).toBe(200);
  expect(await page.json()).toMatchObject({ items: [], more: false });

  // A stream retention did remove updates of after that position starts over, as before.
  const busy = await openSse(th.url, { stream: "node/busy" }, { lastEventId: `${epoch}:1` });
  try {
    expect((await busy.next()).type).toBe("RESET");
  } finally {
    busy.close();
  }
  expect((await fetch(`${th.url}/v1/updates?stream=node/busy&since=${epoch}:1`)).status).toBe(410);
});

test("a quiet stream's update kept for its object is replayed to a reader from before it", async () => {
  const th = await prunedPastQuiet();
  const { epoch } = th.host;
  // The quiet node's only update (version 1) is its pod's current state: retention kept it, below the log's horizon.
  const page = (await (await fetch(`${th.url}/v1/updates?stream=node/quiet&since=${epoch}:0`)).json()) as {
    items: { version: number; name: string; prev: number }[];
  };
  expect(page.items.map((u) => [u.version, u.name, u.prev])).toEqual([[1, "still", 0]]);
  // Without `since`, a page starts at the oldest update the stream keeps, not the log's.
  const first = (await (await fetch(`${th.url}/v1/updates?stream=node/quiet`)).json()) as typeof page;
  expect(first.items.map((u) => u.version)).toEqual([1]);
  await th.changes.apply("pods", "MODIFIED", rawPod("still", { node: "quiet", phase: "Succeeded" }));
  await th.changes.flush();
  // Once it changes and retention deletes version 1, a reader from before it starts over.
  await waitFor(() => th.host.log.horizon("node/quiet") === 1, 5_000, "retention to delete the old update");
  expect((await fetch(`${th.url}/v1/updates?stream=node/quiet&since=${epoch}:0`)).status).toBe(410);
  expect((await fetch(`${th.url}/v1/updates?stream=node/quiet&since=${epoch}:1`)).status).toBe(200);
});
