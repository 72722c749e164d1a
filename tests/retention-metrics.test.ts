/**
 * Retention in time, on a real host's libSQL file: `kubemeta_store_oldest_update_age_seconds` (how old the oldest
 * update the log keeps is) and each `consume` sink's `kubemeta_sink_lag_seconds` (how old the first update it has not
 * delivered is), so that an operator sees a sink near `maxAge` before it loses updates: a sink whose lag passes the
 * oldest update's age has lost some.
 */
import { expect, test } from "bun:test";
import { sinkCaughtUp, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { addPods, consumeSinks, expectAge, sinkMetric } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
const sinks = consumeSinks(async () => {
  await host?.destroy();
  host = undefined;
});

const oldestAge = (th: TestHost) => th.host.metrics.gauge("kubemeta_store_oldest_update_age_seconds", "").get();
const lagSeconds = (th: TestHost, sink: string) => sinkMetric(th, "gauge", "kubemeta_sink_lag_seconds", sink);

/** When version `version` was committed, as the store says (ms). */
async function committedAt(th: TestHost, version: number): Promise<number> {
  const [update] = await th.host.log.read({ stream: "all", after: version - 1, to: version, limit: 1 });
  return Date.parse(update!.time);
}

test("the oldest kept update's age, and a held sink's lag in seconds past it once retention prunes", async () => {
  const th = await startTestHost({ retention: { maxUpdates: 5, interval: "20ms" } });
  host = th;
  expect(oldestAge(th)).toBe(0);
  const gate = Promise.withResolvers<void>();
  await sinks.start(th, "held", { deliver: () => gate.promise });
  await sinks.start(th, "live", { deliver: async () => {} });

  addPods(th, 1);
  await sinkCaughtUp(th, "live");
  // The held sink holds version 1 in delivery: its lag is that update's age, and so is the oldest update's.
  await waitFor(() => lagSeconds(th, "held") >= 1 && oldestAge(th) >= 1, 5_000, "both past a second");
  const first = await committedAt(th, 1);
  expectAge(lagSeconds(th, "held"), first);
  expectAge(oldestAge(th), first);
  expect(lagSeconds(th, "live")).toBe(0);

  // Ten more: retention keeps 5, and the oldest kept is new, while the held sink still has version 1 to deliver.
  addPods(th, 10, 1);
  await th.changes.flush();
  await waitFor(() => th.host.log.oldest() >= 7, 5_000, "retention pruning the log");
  // The gauge reads the new oldest's time at its next refresh; until then it shows an older one's age (the ten were
  // committed over up to a second or more on a loaded machine, so any but the new oldest's is older).
  const newOldest = await committedAt(th, th.host.log.oldest());
  const fromNewOldest = () => oldestAge(th) <= (Date.now() - newOldest) / 1000;
  await waitFor(fromNewOldest, 5_000, "the oldest update's age from the new oldest");
  expectAge(oldestAge(th), newOldest);
  // Version 1, in its delivery still, is older than all the log keeps: the held sink's lag passes the oldest's age.
  const refreshed = lagSeconds(th, "held");
  await waitFor(() => lagSeconds(th, "held") > refreshed, 5_000, "a refresh of the held sink's lag");
  expectAge(lagSeconds(th, "held"), first);
  expect(lagSeconds(th, "held")).toBeGreaterThan(oldestAge(th));

  gate.resolve();
  await sinkCaughtUp(th, "held");
  await waitFor(() => lagSeconds(th, "held") === 0, 5_000, "the held sink's lag once it delivered all");
});
