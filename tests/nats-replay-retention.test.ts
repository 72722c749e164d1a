/**
 * A NATS replay that retention overtakes while it is sent: its requester was within retention when the reply began,
 * and the log was pruned past the part not read yet while the first part waited for the server (found from outside,
 * reviewing what a replay does behind retention). The requester falls behind retention as any reader can: an error
 * chunk that says so and to ask again, which then gets the stream's state; nothing an operator is paged for.
 */
import { afterEach, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import { rawPod, sinkCaughtUp, waitFor } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { client, PREFIX, SLOW_MS, replayHeldAfterFirstChunk, startProxiedNatsHost } from "./nats-fixtures.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Labels enough to make a slim pod about 1.7 KB: a page of the log (2,000 updates) is then past two flushes' MiB. */
const LABELS = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`label-${i}`, "x".repeat(63)]));
const KEPT = 3_000;

test(
  "a replay retention overtakes while it is sent ends with an error chunk to ask again, no error logged; asked " +
    "again, a reset",
  async () => {
    const { server, proxy, th, logged } = await startProxiedNatsHost(cleanups, { maxUpdates: KEPT, interval: "20ms" });
    for (let i = 0; i < KEPT; i++)
      await th.changes.apply("pods", "ADDED", rawPod(`pod-${i}`, { node: "n1", labels: LABELS }));
    await th.changes.flush();
    await sinkCaughtUp(th, "nats");
    const nc = await client(server);
    cleanups.push(() => nc.close());
    const { epoch } = th.host;

    // Once the reply flows, the server's bytes to the sink are held: the flush at its second MiB is never confirmed,
    // and the sink waits there, inside the log's first page, with the rest of the stream not read yet.
    const errors = await replayHeldAfterFirstChunk(nc, proxy, { stream: ALL, from: `${epoch}:0` });

    // Meanwhile each pod changes: retention keeps the last KEPT updates, past the reply's first page.
    for (let i = 0; i < KEPT; i++)
      await th.changes.apply("pods", "MODIFIED", rawPod(`pod-${i}`, { node: "n1", labels: LABELS, phase: "Done" }));
    await th.changes.flush();
    await waitFor(() => th.host.log.oldest() > 2_001, 10_000, "retention to prune past the reply's first page");
    proxy.release();

    await waitFor(() => errors.length > 0, 10_000, "the reply's error chunk");
    expect(errors).toEqual([
      expect.stringMatching(/^retention overtook this reply: .*older than retention.*; ask again$/),
    ]);
    // The sink's own publishing waited on the held flushes too, and fell behind retention: that loss is an error.
    const lost = "sink fell behind retention; the versions in between are lost to it";
    expect(logged.filter((line) => line.level === "error" && line.msg !== lost)).toEqual([]);
    const again = await replay(nc, `${PREFIX}.replay`, { stream: ALL, from: `${epoch}:0` });
    expect(again[0]).toMatchObject({ reset: "behind-retention" });
  },
  SLOW_MS,
);
