/**
 * The NATS sink's connection, waited for by its replay responder after each disconnect (Connection.ready): a wait that
 * ends with the reconnect leaves nothing behind on the signal it was given (the sink's stop signal, which lives as
 * long as the sink: one listener kept per disconnect would grow for as long as a flapping link flaps).
 */
import { afterEach, expect, test } from "bun:test";
import { openConnection } from "../plugins/sinks/nats/connection.ts";
import { waitFor } from "../testing/index.ts";
import { connectionTelemetry, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An AbortController whose signal counts the listeners added to it and not removed. */
function countingController() {
  const controller = new AbortController();
  let listening = 0;
  const { signal } = controller;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal["addEventListener"]>) => {
    listening++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<AbortSignal["removeEventListener"]>) => {
    listening--;
    remove(...args);
  };
  return { controller, listening: () => listening };
}

test(
  "waiting for the reconnect after each disconnect leaves no listener on the stop signal",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    const telemetry = connectionTelemetry();
    const opening = new AbortController();
    cleanups.push(async () => opening.abort());
    const options = async (reconnectWaitMs: () => number) => ({
      client: {
        servers: [server.url],
        maxReconnectAttempts: -1,
        reconnectDelayHandler: reconnectWaitMs,
        timeout: 1_000,
      },
    });
    const policy = { initialMs: 20, maxMs: 100, connectTimeoutMs: 1_000 };
    const connection = (await openConnection(options, policy, telemetry, opening.signal))!;
    cleanups.push(() => connection.nc.close());
    const stop = countingController();

    for (let disconnect = 1; disconnect <= 3; disconnect++) {
      await server.stop();
      await waitFor(() => !connection.isConnected(), 10_000, "the disconnect");
      const ready = connection.ready(stop.controller.signal);
      await server.restart();
      expect(await ready).toBe(true);
    }
    expect(stop.listening()).toBe(0);
  },
  SLOW_MS,
);
