/**
 * NATS going away while the sink waits for the server to confirm a batch (found by tests/chaos.test.ts: two of about
 * twenty nats-server restarts under churn logged an error). The batch is published again once NATS is back, as the
 * README says; that is a warning, as the disconnect is, never an error line an operator would be paged for. So is a
 * replay's reply cut off the same way: its requester, cut off too, asks again.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { ALL } from "../protocol/streams.ts";
import { rawPod, sinkCaughtUp, waitFor } from "../testing/index.ts";
import { Follower } from "./nats-consumer.ts";
import {
  client,
  converged,
  PREFIX,
  SLOW_MS,
  startNatsHost,
  replayHeldAfterFirstChunk,
  startProxiedNatsHost,
} from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import type { Logged } from "./plugins-fixtures.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test(
  "nats-server gone while a batch waits for its confirmation: published again, a warning, no error",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    const logged: Logged[] = [];
    const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
    const th = await startNatsHost(server, { logger });
    cleanups.push(() => th.destroy());
    const nc = await client(server);
    cleanups.push(() => nc.close());
    const follower = new Follower({ nc, prefix: PREFIX, stream: ALL, subject: `${PREFIX}.all` });
    await follower.start();
    await sinkCaughtUp(th, "nats");

    // Stopped, the server takes the batch's bytes and answers no PING: the flush behind them waits.
    const published = () =>
      Number(/^kubemeta_nats_published_total\S* (\d+)$/m.exec(th.host.metrics.render())?.[1] ?? 0);
    const before = published();
    process.kill(server.pid!, "SIGSTOP");
    await th.changes.apply("pods", "ADDED", rawPod("in-flight", { node: "n1" }));
    await th.changes.flush();
    await waitFor(() => published() > before, 5_000, "the batch to be published, its flush waiting");
    // Killed (a stopped process takes SIGKILL): the connection drops under the waiting flush.
    await server.restart();

    await sinkCaughtUp(th, "nats", 10_000);
    await waitFor(() => converged(th, follower, ALL), 10_000, "the follower to hold the pod");
    expect(logged.filter((line) => line.msg === "disconnected from NATS; reconnecting")).not.toHaveLength(0);
    const retried = logged.filter((line) => line.msg === "sink failed to deliver a batch; retrying it");
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.filter((line) => line.level !== "warn")).toEqual([]);
    expect(logged.filter((line) => line.level === "error")).toEqual([]);
  },
  SLOW_MS,
);

test(
  "the connection dropped while a replay waits for the server's confirmation: a warning, no error; its error " +
    "chunk says to ask again",
  async () => {
    const { server, proxy, th, logged } = await startProxiedNatsHost(cleanups);
    // A state of several MiB: its reply flushes (a PING, confirmed by the server's PONG) at each MiB on its way.
    for (let i = 0; i < 4_000; i++) await th.changes.apply("pods", "ADDED", rawPod(`pod-${i}`, { node: "n1" }));
    await th.changes.flush();
    await sinkCaughtUp(th, "nats");
    const nc = await client(server);
    cleanups.push(() => nc.close());

    // Once the reply flows, the server's bytes to the sink are held: a flush started from then on is never confirmed.
    // Past a MiB more, the sink has started such a flush, and waits for it before it sends the next MiB.
    const errors = await replayHeldAfterFirstChunk(nc, proxy, { stream: ALL });
    proxy.partition();
    proxy.release();
    proxy.heal();

    await waitFor(
      () => logged.some((line) => line.msg === "the NATS connection dropped during a replay; its requester asks again"),
      10_000,
      "the replay's end logged",
    );
    expect(logged.filter((line) => line.level === "error")).toEqual([]);
    // Sent once the sink is connected again: it says the request was sound, or the client library would take it as
    // refused and ask for the stream's whole state instead.
    await waitFor(() => errors.length > 0, 10_000, "the reply's error chunk");
    expect(errors).toEqual([expect.stringMatching(/; ask again$/)]);
  },
  SLOW_MS,
);
