/**
 * Fault test (issue 10): a webhook receiver down past the sink's stall threshold while the cluster churns, and
 * kubemeta (a real process) stopped with SIGTERM and started again in the middle of it. The sink's cursor is in the
 * store, so the restart resumes right after the last delivery; once the receiver is back, it gets every update, in
 * order.
 *
 * Seeded: KUBEMETA_FAULT_SEED=<n> replays a run (the seed is printed).
 */
import { afterEach, expect, test } from "bun:test";
import { seededRandom, startChurn } from "../simulator/population.ts";
import { expectGapFreeWithWholeChains, waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, setup } from "./faults-cluster.ts";
import { exitWithin } from "./reliability-process.ts";
import { deduplicated, SECRET, startReceiver } from "./webhook-receiver.ts";

const SEED = Number(process.env.KUBEMETA_FAULT_SEED ?? 20261204);
console.log(`faults-webhook.test.ts seed: ${SEED} (KUBEMETA_FAULT_SEED=${SEED} replays it)`);

afterEach(runCleanups);

/** The sink's stall threshold (`stallAfter`), short so that the outage past it takes seconds, not minutes. */
const STALL_AFTER_MS = 4_000;
/** Past the stall threshold, with 10 s or more of it left after the restart: ten retries or more in each process. */
const OUTAGE_MS = 22_000;
const SAMPLE_EVERY_MS = 3_000;
const SINK = { sink: "webhook" };

interface Sample {
  /** ms since the receiver went down */
  at: number;
  head: number;
  lag: number;
  retries: number;
}

test("a webhook receiver down 22 s during churn, kubemeta restarted amid it: all delivered in order", async () => {
  const random = seededRandom(SEED + 5);
  const receiver = await startReceiver();
  cleanups.push(() => receiver.stop());
  // retry.max 500 ms: it keeps knocking through the outage, each attempt a refused connection, cheap on both sides.
  const env = await setup({
    sinks: [
      "  - type: webhook",
      `    url: ${receiver.url}`,
      `    secret: ${SECRET}`,
      "    timeout: 2s",
      "    batch: { linger: 20ms }",
      "    retry: { initial: 200ms, max: 500ms }",
      `    stallAfter: ${STALL_AFTER_MS}ms`,
    ],
  });
  const first = await env.start();
  await env.ready();
  // Light churn (the outage is long, not heavy): about 500 updates while the receiver is down.
  const churn = startChurn(env.server, { perSecond: 15, seed: SEED + 5 });
  cleanups.push(() => churn.stop());
  await waitFor(() => receiver.accepted().length > 0, 10_000, "a first delivery");
  await Bun.sleep(1_000 + Math.floor(random() * 1_000));
  await receiver.stop();
  const down = Date.now();

  const phases: Sample[][] = [];
  /** Samples every few seconds until `untilMs` after the outage began: kubemeta stays healthy, ready, committing. */
  const sampleUntil = async (untilMs: number) => {
    const samples: Sample[] = [];
    phases.push(samples);
    for (;;) {
      expect((await fetch(`${env.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${env.url}/readyz`)).status).toBe(200);
      const { version } = (await (await fetch(`${env.url}/v1/objects?kind=Namespace`)).json()) as { version: number };
      samples.push({
        at: Date.now() - down,
        head: version,
        lag: (await env.metric("kubemeta_sink_lag_versions", SINK)) ?? -1,
        retries: (await env.metric("kubemeta_webhook_failures_total", { ...SINK, reason: "network" })) ?? 0,
      });
      const left = untilMs - (Date.now() - down);
      if (left <= 0) return;
      await Bun.sleep(Math.min(SAMPLE_EVERY_MS, left));
    }
  };

  // Past the stall threshold, so the sink reports the batch it has held that long, then a clean stop.
  const restartAt = STALL_AFTER_MS + 3_000 + Math.floor(random() * 5_000);
  await sampleUntil(restartAt);
  expect(await env.metric("kubemeta_sink_stalled", SINK)).toBe(1);
  first.proc.kill("SIGTERM");
  expect(await exitWithin(first.proc, 20_000)).toBe(0);
  const cursor = (await env.withStore((store) => store.cursor("sink/webhook")))!;
  // The cursor is where deliveries stopped: the end of the last batch the receiver accepted, or of the one before
  // it when the outage cut that answer off before kubemeta read it.
  const lastBefore = receiver.accepted().at(-1)!.body;
  expect([lastBefore.first - 1, lastBefore.last]).toContain(cursor);
  const second = await env.start();
  await env.ready();
  await sampleUntil(OUTAGE_MS);
  await receiver.start();
  const up = Date.now();
  await Bun.sleep(1_000 + Math.floor(random() * 1_000));
  churn.stop();
  console.log(
    `restart at ${restartAt} ms; samples (at ms: head / lag / retries): ` +
      phases.map((p) => p.map((s) => `${s.at}: ${s.head}/${s.lag}/${s.retries}`).join(", ")).join(" | restart | "),
  );

  // Through the outage: the store kept committing, the lag grew, the retries went on and were counted, in both
  // processes; the second started with the first's lag or more (its cursor came from the store, not the head).
  // Samples a second or more apart see new commits; the first after the restart (a process that has just started)
  // and the last of a phase (a moment after the one before) need not.
  const all = phases.flat();
  const restarted = phases[1]![0]!;
  const grew = (s: Sample, i: number) =>
    i === 0 || s === restarted || s.head > all[i - 1]!.head || s.at - all[i - 1]!.at < 1_000;
  expect(all.every((s, i) => grew(s, i) && (i === 0 || s.head >= all[i - 1]!.head))).toBe(true);
  for (const samples of phases) {
    expect(samples.every((s, i) => i === 0 || s.lag >= samples[i - 1]!.lag)).toBe(true);
    expect(samples.at(-1)!.lag).toBeGreaterThan(samples[0]!.lag);
    expect(samples.at(-1)!.retries).toBeGreaterThanOrEqual(samples[0]!.retries + 10);
  }
  expect(phases[1]![0]!.lag).toBeGreaterThanOrEqual(phases[0]!.at(-1)!.lag);

  // Back up: it converges, everything committed delivered once de-duplicated, in order, none missing.
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  await waitFor(async () => (await env.metric("kubemeta_sink_lag_versions", SINK)) === 0, 20_000, "lag 0");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  const head = updates.at(-1)!.version;
  await waitFor(() => deduplicated(receiver.accepted()).at(-1) === head, 10_000, "the webhook to deliver all");
  expect(deduplicated(receiver.accepted())).toEqual(updates.map((u) => u.version));
  // The second process resumed right after the first's cursor: nothing skipped, nothing older sent again.
  expect(receiver.accepted().find((r) => r.at >= up)!.body.first).toBe(cursor + 1);
  const hooked = new Map<string, number>();
  const seen = new Set<number>();
  for (const request of receiver.accepted())
    for (const u of request.body.updates) {
      if (seen.has(u.version)) continue;
      seen.add(u.version);
      if (u.type === "DELETED") hooked.delete(u.uid);
      else hooked.set(u.uid, u.version);
    }
  expect(hooked).toEqual(await env.storeState());
  for (const reason of ["status_4xx", "max_retries"])
    expect(await env.metric("kubemeta_webhook_skipped_updates_total", { reason })).toBe(0);
  expect(await env.metric("kubemeta_sink_lost_versions_total", SINK)).toBeFalsy();
  expect(first.out.lines("sink has held one batch too long; it delays only itself")).toHaveLength(1);
  // Dozens of refused attempts, a few lines: the outage's first, a warning a minute, a new cause (a reset before
  // the refusals); the one back up says how many there were.
  for (const { out } of [first, second]) {
    expect(out.lines("webhook delivery failed; retrying").length).toBeWithin(1, 5);
    expect(out.text).not.toContain('"level":"error"');
  }
  const [recovered, ...again] = second.out.lines("webhook delivery works again");
  expect(again).toEqual([]);
  expect(recovered).toMatchObject({ level: "info" });
  expect(recovered!.failedAttempts).toBeGreaterThan(10);
  console.log(
    `updates: ${head}; webhook requests after the outage: ${receiver.requests.filter((r) => r.at >= up).length}`,
  );
}, 150_000);
