/**
 * A NATS replay answered by a replica that cannot read the store (a remote store down, its path to it cut): the
 * read's failure is the store's, not the request's. Every requester gets one error chunk at once, saying to ask again
 * later (the client library does), the replica logs a warning at most once a minute, as SSE streams and /v1/updates
 * do for the same failure, and once the store is back the same requests are answered. It logged `replay failed` at
 * error for each request, and told the requester the store's own error (`ECONNREFUSED: Unable to connect…`).
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "@nats-io/transport-node";
import { STORE_UNREADABLE } from "../plugins/sinks/nats/reply-failure.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { restartableStore } from "./ha-chaos-parts.ts";
import { setupHa } from "./ha-cluster.ts";
import { restartedReplica } from "./ha-checks.ts";
import { replay } from "./nats-consumer.ts";
import { startNatsServer } from "./nats-server.ts";

afterEach(runCleanups);

/** The client library's default `replayTimeoutMs`: silence this long and a requester gives up on a reply. */
const REQUESTER_TIMEOUT_MS = 5_000;

test("a replay that cannot read the store: an error to ask again later at once, a warning, no error", async () => {
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const env = await setupHa({ replicas: 1, sinks: ["  - type: nats", `    servers: ["${nats.url}"]`] });
  cleanups.push(env.destroy);
  const store = restartableStore(env);
  const { again, epoch, version } = await restartedReplica(env);
  await store.stop();

  const nc = await connect({ servers: nats.url });
  cleanups.push(() => nc.close());
  // Attempts 1: a reply that does not come within the requester's timeout fails the test.
  const ask = (request: object) => replay(nc, "kubemeta.faults.replay", request, REQUESTER_TIMEOUT_MS, 1);
  // Replays of positions the log holds, and resets (the stream's state is read from the store).
  const requests = [
    { stream: "all", from: `${epoch}:1` },
    { stream: "shared", from: `${epoch}:5` },
    { stream: "all" },
    { stream: "shared" },
  ];
  for (const request of requests) {
    const chunks = await ask(request);
    // The README's error chunk, a reset's too (no reset marker: nothing replaces the requester's state).
    expect(chunks).toEqual([{ epoch, seq: 0, updates: [], error: STORE_UNREADABLE, last: true }]);
  }
  expect(again.out.lines("replay failed")).toEqual([]);
  const warned = again.out.lines("a read of the store failed; the requester is told to ask again later");
  expect(warned).toHaveLength(1);
  expect(JSON.stringify(warned[0]!.error)).toContain("ECONNREFUSED");
  expect(await env.metric(again.url, "kubemeta_nats_replay_requests_total", { result: "failed" })).toBe(4);

  store.start();
  const answered = (request: object) =>
    waitFor(
      async () => {
        const chunks = await ask(request);
        return chunks.at(-1)!.error === undefined ? chunks : undefined;
      },
      10_000,
      `a reply to ${JSON.stringify(request)} once the store is back`,
    );
  const replayed = await answered(requests[0]!);
  expect(replayed[0]!.updates[0]!.version).toBe(2);
  expect(replayed.at(-1)!.through).toBeGreaterThanOrEqual(version);
  const reset = await answered(requests[2]!);
  expect(reset[0]!.reset).toBe("no-resume-point");
  expect(reset.flatMap((chunk) => chunk.updates).length).toBeGreaterThan(100);
}, 60_000);
