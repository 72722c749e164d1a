/**
 * Publishes the NATS server refuses (kubemeta's NATS user may not publish on a subject): each is lost, not retried,
 * and the sink's cursor moves on. Counted, so that an alert sees what the subscribers of that subject miss.
 */
import { afterEach, expect, test } from "bun:test";
import { sinkCaughtUp, waitFor } from "../testing/index.ts";
import { client, nodeNames, PREFIX, rawNode, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const AUTH = { user: "kubemeta", password: "pa55word-0123" };
const ALL = `${PREFIX}.all`;

test(
  "each message the server refuses is counted in kubemeta_nats_publish_refusals_total, from 0",
  async () => {
    const server = await startNatsServer({ auth: { ...AUTH, publishDeny: [ALL] } });
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server, { sink: AUTH });
    cleanups.push(() => th.destroy());
    const refusals = () =>
      Number(/kubemeta_nats_publish_refusals_total\{sink="nats"\} (\d+)\n/.exec(th.host.metrics.render())?.[1]);
    expect(refusals()).toBe(0);
    const nc = await client(server, { user: AUTH.user, pass: AUTH.password });
    cleanups.push(() => nc.close());
    const delivered: string[] = [];
    nc.subscribe(`${PREFIX}.node.>`, { callback: (_, msg) => void delivered.push(msg.subject) });
    await nc.flush();

    // Each update goes to `all` (refused) and to its node's subject (delivered, then flushed: the refusal before it).
    const nodes = nodeNames(3);
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    await th.changes.flush();
    await waitFor(() => delivered.length === nodes.length, 10_000, "every update on its node's subject");
    await sinkCaughtUp(th, "nats");
    await waitFor(() => refusals() === nodes.length, 10_000, "one refusal per update on all");
    expect(refusals()).toBe(nodes.length);
  },
  SLOW_MS,
);
