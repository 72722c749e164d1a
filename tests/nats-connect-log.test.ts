/**
 * What the NATS sink logs while NATS is unreachable at its start, against a real nats-server stopped and started
 * again on its port: its connection attempts, one per backoff step (reconnect.max apart at most), are one warning at
 * first and then debug lines but for a warning a minute, and the connection made at last is the one line that says
 * so, with the outage's length and attempts. A warning per attempt was about 3,600 an hour at `reconnect.max` 1s.
 */
import { afterEach, expect, test } from "bun:test";
import * as v from "valibot";
import nats from "../plugins/sinks/nats.ts";
import { natsSinkSchema } from "../plugins/sinks/nats/options.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { natsSink, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { contextOn, sinkMetric, type Logged } from "./plugins-fixtures.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test(
  "NATS unreachable at the start: one warning, not one per attempt, then one line once connected",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    await server.stop();
    const th = await startTestHost();
    cleanups.push(() => th.destroy());
    const logged: Logged[] = [];
    const ctx = contextOn(th, "away", logged);
    const { type: _, ...raw } = natsSink(server);
    const sink = nats.create(v.parse(natsSinkSchema, raw), ctx);
    await sink.start();
    cleanups.push(() => sink.stop());

    const failures = () => sinkMetric(th, "counter", "kubemeta_nats_connect_failures_total", "away");
    await waitFor(() => failures() >= 8, 15_000, "eight failed connection attempts");
    await server.restart();
    const connected = await waitFor(
      () => logged.find((line) => line.msg === "connected to NATS"),
      15_000,
      "the connection",
    );

    const failed = logged.filter((line) => line.msg === "cannot connect to NATS; retrying");
    expect(failed.map((line) => line.level)).toEqual(["warn"]);
    expect(JSON.stringify(failed[0]!.error)).toContain("ECONNREFUSED");
    expect(connected).toMatchObject({ level: "info", server: `127.0.0.1:${server.port}`, failedAttempts: failures() });
    expect(connected.downMs).toBeGreaterThan(0);
    expect(logged.filter((line) => line.msg === "connected to NATS")).toHaveLength(1);
    expect(sinkMetric(th, "gauge", "kubemeta_nats_connected", "away")).toBe(1);
  },
  SLOW_MS,
);
