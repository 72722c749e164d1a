/**
 * The leader's check of the store (CommitQueue.check): on a quiet cluster an empty commit, so that a store that hangs
 * is found within STORE_CHECK_MS and STORE_UNANSWERED_MS (README, Remote store) whatever committed last: a change's
 * commit in between the checks puts the next check off, but never past STORE_CHECK_MS after it.
 */
import { afterEach, expect, test } from "bun:test";
import { STORE_CHECK_MS } from "../core/commit-queue.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

/** The commits the store has taken, empty ones included (kubemeta_store_commit_seconds' count). */
async function commits(th: TestHost): Promise<number> {
  const text = await (await fetch(`${th.url}/metrics`)).text();
  return Number(/^kubemeta_store_commit_seconds_count(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}

/** Resolves when the store has taken a commit after the `after`th; when it had (performance.now()). */
async function nextCommit(th: TestHost, after: number): Promise<number> {
  await waitFor(async () => (await commits(th)) > after, 3 * STORE_CHECK_MS, "the store's next commit");
  return performance.now();
}

test("a change committed between two checks of the store: the next commit within STORE_CHECK_MS", async () => {
  const th = await startTestHost();
  hosts.push(th);
  // A check's empty commit (nothing else is committed on this quiet host): the checks' phase.
  const checkedAt = await nextCommit(th, await commits(th));
  // A change committed a little past half a period after that check: the next check, a period after the last, finds
  // the store asked less than half a period before.
  await Bun.sleep(0.56 * STORE_CHECK_MS - (performance.now() - checkedAt));
  const before = await commits(th);
  await th.changes.apply("pods", "ADDED", rawPod("a", { rv: "10" }));
  const changedAt = await nextCommit(th, before);
  const checkedAgainAt = await nextCommit(th, before + 1);
  const gapMs = checkedAgainAt - changedAt;
  console.log(`the store's next commit ${gapMs.toFixed(0)} ms after the change's`);
  expect(gapMs).toBeLessThan(STORE_CHECK_MS + 300);
}, 30_000);
