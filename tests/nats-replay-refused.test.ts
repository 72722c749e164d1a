/**
 * A replay subscription the server refuses (kubemeta's NATS user lacks the permission to subscribe to
 * `<prefix>.replay`): the client drops it for good, on that connection's reconnects too. The sink counts the refusal
 * and subscribes again after the next reconnect, by which time an operator may have granted the permission.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { waitFor } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { client, PREFIX, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const REPLAY = `${PREFIX}.replay`;
const refusals = (count: number) => `kubemeta_nats_replay_subscription_failures_total{sink="nats"} ${count}`;

test(
  "a replay subscription the server refuses is counted and logged, and made again after the next reconnect",
  async () => {
    const auth = { user: "kubemeta", password: "pa55word-0123" };
    const server = await startNatsServer({ auth: { ...auth, subscribeDeny: [REPLAY] } });
    cleanups.push(() => server.destroy());
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (line) => void lines.push(line) });
    const th = await startNatsHost(server, { sink: auth, logger });
    cleanups.push(() => th.destroy());
    const metrics = () => th.host.metrics.render();
    expect(metrics()).toMatch(/kubemeta_nats_replay_subscription_failures_total\{sink="nats"\} [01]\n/);
    await waitFor(() => metrics().includes(refusals(1)), 10_000, "the refusal counted");
    expect(lines.some((line) => line.includes("the NATS server refused the replay subscription"))).toBe(true);
    const nc = await client(server, { user: auth.user, pass: auth.password });
    cleanups.push(() => nc.close());
    await expect(replay(nc, REPLAY, { stream: "all" }, 1_000, 1, 200)).rejects.toThrow("no responders");

    // Each reconnect subscribes again: refused again while the permission is missing.
    await server.restart();
    await waitFor(() => metrics().includes(refusals(2)), 10_000, "the refusal after a reconnect counted");

    // The permission granted, as an operator would; the server's restart is the sink's reconnect.
    await server.restart({ auth });
    const answered = await replay(nc, REPLAY, { stream: "all" }, 1_000, 5, 10_000);
    expect(answered.at(-1)?.last).toBe(true);
    expect(metrics()).toContain(refusals(2));
  },
  SLOW_MS,
);
