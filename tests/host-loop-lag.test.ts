/**
 * `kubemeta_event_loop_lag_seconds` on /metrics: a task that holds the event loop shows up as a tick as late as it
 * was long. It is how bench/sync.ts tells kubemeta's own stalls from the machine's.
 */
import { afterAll, expect, test } from "bun:test";
import { startTestHost, waitFor, type TestHost } from "../testing/index.ts";

let th: TestHost | undefined;
afterAll(() => th?.destroy());

/** Observations of the lag histogram above `seconds`, and in all, from /metrics. */
async function lagOver(seconds: number): Promise<{ over: number; count: number }> {
  const text = await (await fetch(`${th!.url}/metrics`)).text();
  const value = (series: string) => Number(text.match(new RegExp(`^${series} (\\S+)$`, "m"))?.[1] ?? Number.NaN);
  const count = value("kubemeta_event_loop_lag_seconds_count");
  return { over: count - value(`kubemeta_event_loop_lag_seconds_bucket\\{le="${seconds}"\\}`), count };
}

test("a task that holds the event loop 150 ms shows as a tick over 100 ms late", async () => {
  th = await startTestHost();
  await waitFor(async () => (await lagOver(0.1)).count >= 5, 5_000, "the lag timer to tick");
  const before = await lagOver(0.1);
  const until = performance.now() + 150;
  while (performance.now() < until) {
    // Holds the event loop, as a long synchronous task would.
  }
  await waitFor(async () => (await lagOver(0.1)).count > before.count + 1, 5_000, "ticks after the task");
  // At least: a loaded machine may delay another tick as much.
  expect((await lagOver(0.1)).over).toBeGreaterThanOrEqual(before.over + 1);
});
