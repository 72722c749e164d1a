/**
 * A leader whose path to the store hangs (packets dropped; the standby still reaches the store) has its commits fail
 * only after store.timeout, 60 s. It does not hold the Lease that long: once a commit has waited STORE_UNANSWERED_MS
 * for its answer, and its batch has gone uncommitted for longer than the Lease's duration, it ends its term as a
 * leader whose commits fail does, and the standby leads. Over `http://` and over `ws://`, where the commit hangs on a
 * WebSocket of its own and the reads that follow go over others, which the cut path hangs too.
 */
import { afterEach, expect, test } from "bun:test";
import { STORE_UNANSWERED_MS } from "../core/commit-queue.ts";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { LEASE_MS, setupHa, TAKEOVER_MS } from "./ha-cluster.ts";
import { readiness } from "./ha-checks.ts";

afterEach(runCleanups);

test.each(["http", "ws"] as const)(
  "a leader whose commits hang ends its term without waiting out store.timeout; the standby leads (%s)",
  async (storeScheme) => {
    // The server keeps an idle connection past the test: a commit on the cut path hangs until store.timeout.
    const env = await setupHa({ replicas: 2, storePaths: true, storeIdleTimeoutS: 120, storeScheme });
    cleanups.push(env.destroy);
    const cutOff = await env.start(0);
    await env.leading(cutOff);
    const standby = await env.start(1);
    await env.ready(standby);
    const churn = startChurn(env.server, { perSecond: 40, seed: 22 });
    cleanups.push(() => churn.stop());
    const committed = (url: string) => env.metric(url, "kubemeta_updates_committed_total");
    await waitFor(async () => (await committed(cutOff.url)) ?? 0, 10_000, "a commit");

    env.storePaths[0]!.partition();
    const partitionedAt = performance.now();
    const stepDown = await waitFor(
      () => cutOff.out.lines("no longer leading; following the store")[0],
      STORE_UNANSWERED_MS + LEASE_MS + 5_000,
      "the cut-off leader to end its term",
    );
    const stepDownMs = performance.now() - partitionedAt;
    console.log(`the leader, its commit hung, ended its term after ${stepDownMs.toFixed(0)} ms`);
    expect(stepDown).toMatchObject({
      reason: "store not writable",
      error: expect.stringMatching(/^no answer from the/),
    });
    expect(stepDownMs).toBeGreaterThan(STORE_UNANSWERED_MS - 1_000);
    // No commit failed: it is still unanswered, and unready as a follower that cannot read the store.
    expect(cutOff.out.lines("store commit failed; retrying")).toEqual([]);
    expect((await readiness(cutOff)).waiting).toEqual([expect.stringMatching(/^store not readable: no answer from/)]);

    // It gave the Lease back: the standby leads at its next try, and commits the churn while the path is still cut.
    await env.leading(standby, TAKEOVER_MS);
    const before = (await committed(standby.url)) ?? 0;
    await waitFor(async () => ((await committed(standby.url)) ?? 0) > before, 10_000, "the standby to commit");
  },
  90_000,
);
