/**
 * An SSE stream whose catch-up cannot read the store (a remote store down, a replica's path to it cut): the read's
 * failure is the store's, not the stream's. The stream ends with `retry:` (its EventSource comes back with its
 * Last-Event-ID in 5 s, as a follower behind an unreadable store tells it), no RESET, and a warning is logged at most
 * once a minute, as /v1/updates does for the same failure: not an error per stream (a chaos run with replicas logged
 * `stream failed` at error for each client that reconnected while the store was down).
 */
import { afterEach, expect, test } from "bun:test";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { setupHa } from "./ha-cluster.ts";
import { restartedReplica } from "./ha-checks.ts";

afterEach(runCleanups);

test("an SSE catch-up that cannot read the store ends with retry, logs a warning, not an error", async () => {
  const env = await setupHa({ replicas: 1 });
  cleanups.push(env.destroy);
  const { again, epoch } = await restartedReplica(env);
  await env.store.stop();

  const watch = (position: string) =>
    fetch(`${again.url}/v1/watch?stream=all`, {
      headers: { accept: "text/event-stream", "last-event-id": position },
      signal: AbortSignal.timeout(10_000),
    }).then((response) => response.text());
  // Two clients resuming from positions the log holds: each needs the store to catch up.
  for (const position of [`${epoch}:1`, `${epoch}:5`]) {
    const body = await watch(position);
    expect(body).toContain("retry: 5000");
    expect(body).not.toContain("RESET");
  }
  expect(again.out.lines("stream failed")).toEqual([]);
  const warned = again.out.lines("a read of the store failed; the stream ends, its client to come back");
  expect(warned).toHaveLength(1);
  expect(JSON.stringify(warned[0]!.error)).toContain("ECONNREFUSED");
}, 60_000);
