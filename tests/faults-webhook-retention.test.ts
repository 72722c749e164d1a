/**
 * A webhook receiver down for longer than the store's retention while the cluster churns, against a real kubemeta
 * process (README, webhook: "A webhook down for longer than the store's retention … resumes from the oldest update
 * still kept, logs an error and counts the versions it missed"). Retention here is small (`maxUpdates: 50`), so the
 * outage is seconds long.
 */
import { afterEach, expect, test } from "bun:test";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, setup } from "./faults-cluster.ts";
import { SECRET, startReceiver } from "./webhook-receiver.ts";

afterEach(runCleanups);

const SINK = { sink: "webhook" };

test("a webhook receiver down past retention: what was kept delivered in order, the rest counted lost", async () => {
  const receiver = await startReceiver();
  cleanups.push(() => receiver.stop());
  const env = await setup({
    retention: "{ maxUpdates: 50, interval: 200ms }",
    sinks: [
      "  - type: webhook",
      `    url: ${receiver.url}`,
      `    secret: ${SECRET}`,
      "    batch: { linger: 20ms }",
      "    retry: { initial: 100ms, max: 500ms }",
    ],
  });
  const kubemeta = await env.start();
  await env.ready();
  const churn = startChurn(env.server, { perSecond: 200 });
  cleanups.push(() => churn.stop());
  await waitFor(() => receiver.accepted().length > 0, 10_000, "a first delivery");
  await receiver.stop();
  const epoch = receiver.accepted()[0]!.body.epoch;
  const delivered = () => receiver.accepted().flatMap((request) => request.body.updates);
  const deliveredThrough = Math.max(...delivered().map((update) => update.version));
  const prunedPast = async (version: number) =>
    (await fetch(`${env.url}/v1/updates?since=${epoch}:${version}`)).status === 410;
  // Past what the sink holds in memory too: the batch it retries is up to `linger`'s worth after what was accepted.
  await waitFor(() => prunedPast(deliveredThrough + 500), 15_000, "retention to prune past the receiver's outage");
  churn.stop();
  await receiver.start();

  const readHead = async () =>
    ((await (await fetch(`${env.url}/v1/objects?kind=Node`)).json()) as { version: number }).version;
  // The churn's last changes may still be on their way: the head is the log's once the sink has nothing left.
  const head = await waitFor(
    async () => {
      const version = await readHead();
      const caughtUp = (await env.metric("kubemeta_sink_lag_versions", SINK)) === 0;
      return caughtUp && Math.max(...delivered().map((update) => update.version)) === version ? version : undefined;
    },
    15_000,
    "the receiver to get the head",
  );
  // In order: each version the receiver gets for the first time is above every one it got before (a retry resends).
  const versions: number[] = [];
  for (const { version } of delivered())
    if (!versions.includes(version)) {
      expect(version).toBeGreaterThan(versions.at(-1) ?? 0);
      versions.push(version);
    }
  const gaps = versions.slice(1).filter((version, i) => version !== versions[i]! + 1);
  // One gap: the versions retention pruned before the sink got to them; every other version delivered, in order.
  expect(gaps).toHaveLength(1);
  const lost = await env.metric("kubemeta_sink_lost_versions_total", SINK);
  expect(versions[0]).toBe(1);
  expect(versions.length + lost!).toBe(head);
  expect(lost).toBeGreaterThan(0);
  // The receiver sees the gap in `prev`, as the README says: the first update after it names a version it never got.
  const afterGap = delivered().find((update) => update.version === gaps[0])!;
  expect(versions).not.toContain(afterGap.prev);
  expect(kubemeta.out.text).toContain('"msg":"sink fell behind retention; the versions in between are lost to it"');
});
