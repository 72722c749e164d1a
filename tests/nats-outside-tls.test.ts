/**
 * A NATS sink whose server is written `tls://` (README: `tls` is "implied by `tls://` URLs") against a real nats-server
 * that offers no TLS: the sink must not log in over plain TCP, its password in the clear, as if `nats://` were written.
 */
import { expect, test } from "bun:test";
import * as v from "valibot";
import nats from "../plugins/sinks/nats.ts";
import { natsSinkSchema } from "../plugins/sinks/nats/options.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { natsSink, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { contextOn, sinkMetric, type Logged } from "./plugins-fixtures.ts";

test(
  "a tls:// server that offers no TLS is refused, never logged in to in the clear",
  async () => {
    const server = await startNatsServer({ auth: { user: "kubemeta", password: "s3cret" } });
    const th = await startTestHost();
    const logged: Logged[] = [];
    const { type: _, ...raw } = natsSink(server, {
      servers: [`tls://127.0.0.1:${server.port}`],
      user: "kubemeta",
      password: "s3cret",
      reconnect: { initial: "20ms", max: "100ms" },
    });
    const sink = nats.create(v.parse(natsSinkSchema, raw), contextOn(th, "tls", logged));
    try {
      await sink.start();
      const failures = () => sinkMetric(th, "counter", "kubemeta_nats_connect_failures_total", "tls");
      await waitFor(() => failures() >= 3, 10_000, "three refused connection attempts");
      expect(sinkMetric(th, "gauge", "kubemeta_nats_connected", "tls")).toBe(0);
      expect(logged.find((line) => line.msg === "connected to NATS")).toBeUndefined();
      const warned = logged.find((line) => line.msg === "cannot connect to NATS; retrying");
      expect(JSON.stringify(warned?.error)).toMatch(/tls/);
    } finally {
      await sink.stop();
      await th.destroy();
      await server.destroy();
    }
  },
  SLOW_MS,
);
