/**
 * The NATS sink's connection loop outlives an error out of one of its rounds. Nothing in a round throws by design
 * (nats-core's subscribe throws only on a closed or draining connection, which the sink's own connection is not before
 * its close, and every other call there is caught), so the error is a bug's; here the log handed to the sink throws
 * when the replay responder starts, the thinnest stand-in for one. The loop ended on it: one error line, no
 * replay answered any more. Failed rounds and failed connects that end together are one recovery, one line.
 */
import { afterEach, expect, test } from "bun:test";
import * as v from "valibot";
import nats from "../plugins/sinks/nats.ts";
import { natsSinkSchema } from "../plugins/sinks/nats/options.ts";
import type { CommittedLog } from "../sdk/contract.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { client, natsSink, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { addPods, contextOn, sinkMetric, type Logged } from "./plugins-fixtures.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The host's log, whose `whole` (the replay responder's start) throws at each call while `fails()`, as a bug would. */
function throwing(log: CommittedLog, fails: () => boolean): CommittedLog {
  return new Proxy(log, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key !== "whole") return typeof value === "function" ? value.bind(target) : value;
      return (...args: Parameters<CommittedLog["whole"]>) => {
        if (!fails()) return target.whole(...args);
        throw new Error("a bug in the replay responder's start");
      };
    },
  });
}

/** True at its first `times` calls. */
function firstTimes(times: number): () => boolean {
  let calls = 0;
  return () => calls++ < times;
}

/** A nats-server, a test host, and a NATS sink started on it whose rounds fail at their start while `fails()`. */
async function startLooping(fails: () => boolean) {
  const server = await startNatsServer();
  cleanups.push(() => server.destroy());
  const th = await startTestHost();
  cleanups.push(() => th.destroy());
  const logged: Logged[] = [];
  const ctx = contextOn(th, "looping", logged);
  const { type: _, ...raw } = natsSink(server);
  const sink = nats.create(v.parse(natsSinkSchema, raw), { ...ctx, log: throwing(th.host.log, fails) });
  await sink.start();
  cleanups.push(() => sink.stop());
  const failures = th.host.metrics.counter("kubemeta_plugin_failures_total", "");
  return {
    server,
    th,
    logged,
    saved: ctx.saved,
    runFailures: () => failures.get({ plugin: "looping", kind: "sink", phase: "run" }),
    connectFailures: () => sinkMetric(th, "counter", "kubemeta_nats_connect_failures_total", "looping"),
  };
}

test(
  "an error out of a round is logged, counted, and the sink connects again: replays are answered",
  async () => {
    const { server, logged, runFailures } = await startLooping(firstTimes(1));

    const failed = await waitFor(
      () => logged.find((line) => line.level === "error"),
      10_000,
      "the round's error to be logged",
    );
    expect(failed.msg).toBe("NATS connection failed on an unexpected error; connecting again");
    expect(JSON.stringify(failed.error)).toContain("a bug in the replay responder's start");
    expect(runFailures()).toBe(1);

    const nc = await client(server);
    cleanups.push(() => nc.close());
    const chunks = await replay(nc, "kubemeta.test.replay", { stream: "all" });
    expect(chunks.at(-1)).toMatchObject({ last: true });
    expect(logged.filter((line) => line.msg === "connected to NATS")).toHaveLength(2);
  },
  SLOW_MS,
);

test(
  "a round failing again and again is one error, not one per round, and one line once a connection is served",
  async () => {
    const { server, logged, runFailures } = await startLooping(firstTimes(6));

    await waitFor(() => runFailures() === 6, 15_000, "six rounds");
    const failed = logged.filter(
      (line) => line.msg === "NATS connection failed on an unexpected error; connecting again",
    );
    expect(failed.map((line) => line.level)).toEqual(["error"]);
    const connected = () => logged.filter((line) => line.msg === "connected to NATS");
    await waitFor(() => connected().at(-1)?.failedAttempts, 15_000, "the connection served after six failed rounds");
    // The first connection said at once (nothing had failed yet), the one served at last with the outage's length.
    expect(connected().map((line) => line.level)).toEqual(["info", "info"]);
    expect(connected()[0]!.failedAttempts).toBeUndefined();
    expect(connected()[1]).toMatchObject({ server: `127.0.0.1:${server.port}`, failedAttempts: 6 });
    expect(connected()[1]!.downMs).toBeGreaterThan(0);
  },
  SLOW_MS,
);

test(
  "rounds failing, then NATS stopped and back under traffic: the connection served is one `connected to NATS` line",
  async () => {
    let broken = true;
    const { server, th, logged, saved, runFailures, connectFailures } = await startLooping(() => broken);
    await waitFor(() => runFailures() >= 2, 15_000, "two failed rounds");
    await server.stop();
    addPods(th, 20);
    await th.changes.flush();
    const refused = connectFailures();
    await waitFor(() => connectFailures() >= refused + 2, 15_000, "two connection attempts refused");
    const before = logged.length;
    broken = false;
    await server.restart();

    // Served: what was committed while NATS was away is published, and a replay answered.
    await waitFor(() => saved() === th.host.log.head(), 15_000, "the cursor at the log's head");
    const nc = await client(server);
    cleanups.push(() => nc.close());
    expect((await replay(nc, "kubemeta.test.replay", { stream: "all" })).at(-1)).toMatchObject({ last: true });
    const said = logged.slice(before).filter((line) => line.msg === "connected to NATS" && line.level === "info");
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ server: `127.0.0.1:${server.port}`, maxPayload: expect.any(Number) });
    expect(said[0]!.downMs).toBeGreaterThan(0);
    expect(said[0]!.failedAttempts).toBeGreaterThanOrEqual(2);
  },
  SLOW_MS,
);
