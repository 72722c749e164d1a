/**
 * A duration at the longest the config takes (596h, what one timer waits: README, Configuration) is waited for, and
 * so is a wait made of it (a quarter past `watchTimeout`, twice `connectTimeout`): a setTimeout past 2^31-1 ms fires
 * at once, so such a watch ended as soon as it opened and such a NATS connection attempt was given up unmade.
 */
import { afterEach, expect, test } from "bun:test";
import { makePod } from "../simulator/population.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { rawPod, waitFor, type TestHost } from "../testing/index.ts";
import { count, inSync, RecordingSink, withCluster, within } from "./source-kubernetes-recorder.ts";
import { client, PREFIX, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("a deadline past the longest timer is not reached at once", async () => {
  const never = new Promise<never>(() => {});
  expect(await until(Promise.race([never, Bun.sleep(200).then(() => "later")]), Date.now() + 30 * 86_400_000)).toBe(
    "later",
  );
  expect(await until(never, Date.now() + 50)).toBe(TIMED_OUT);
});

test("a source with watchTimeout 596h keeps its watch open", () =>
  withCluster(
    async ({ server, start }) => {
      const sink = new RecordingSink();
      const running = await start(sink, { watchTimeout: "596h", streamingList: "never" });
      await within(running.synced, 5_000, "the first sync");
      server.create(makePod({ name: "after-sync", namespace: "default", node: "n-1" }));
      await waitFor(() => sink.state("Pod").size === 16 && inSync(sink, server, "Pod"), 5_000, "the pod made since");
      // Was: each watch ended at once ("the watch ended at once without events"), re-opened after a backoff.
      const restarts = (reason: string) =>
        count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason });
      expect({ error: restarts("error"), overdue: restarts("overdue") }).toEqual({ error: 0, overdue: 0 });
    },
    { tls: false },
  ));

test("a NATS sink with connectTimeout 400h connects and publishes", async () => {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  // Was: every attempt "had not settled after 2880001000 ms", given up at once, for good.
  const th: TestHost = await startNatsHost(server, { sink: { connectTimeout: "400h" } });
  cleanups.push(() => th.destroy());
  const nc = await client(server);
  cleanups.push(() => nc.close());
  const seen: string[] = [];
  nc.subscribe(`${PREFIX}.all`, { callback: (_error, msg) => void seen.push(msg.json<{ name: string }>().name) });
  await nc.flush();
  await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await th.changes.flush();
  await waitFor(() => seen.includes("web-1"), 10_000, "the update published");
  const failures = /kubemeta_nats_connect_failures_total\{sink="nats"\} (\d+)/.exec(th.host.metrics.render());
  expect(failures?.[1]).toBe("0");
});
