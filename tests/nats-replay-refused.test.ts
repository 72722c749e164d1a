/**
 * A replay subscription the server refuses (kubemeta's NATS user lacks the permission to subscribe to
 * `<prefix>.replay`): the client drops it for good, on that connection's reconnects too. The sink counts the refusal
 * and subscribes again, after a backoff and at each reconnect, by which time an operator may have granted the
 * permission: with a restart of the server, or a reload of its configuration that keeps the connection.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { sinkCaughtUp, waitFor } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { client, nodeNames, PREFIX, rawNode, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { type NatsDenials, startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const REPLAY = `${PREFIX}.replay`;
/** Where the refusal lines send an operator (spelt out, as they are). */
const PERMISSIONS = "README: NATS, Permissions";
const AUTH = { user: "kubemeta", password: "pa55word-0123" };
const RECONNECTED_ONCE = 'kubemeta_nats_reconnects_total{sink="nats"} 1\n';
const refusalsCounted = (metrics: string) =>
  Number(/kubemeta_nats_replay_subscription_failures_total\{sink="nats"\} (\d+)/.exec(metrics)?.[1] ?? 0);

/**
 * A nats-server (kubemeta's user denied the replay subject unless `auth` says otherwise), a host whose NATS sink uses
 * it, the host's log lines, and a client of that user to ask for replays with.
 */
async function startReplayHost(auth: typeof AUTH & NatsDenials = { ...AUTH, subscribeDeny: [REPLAY] }) {
  const server = await startNatsServer({ auth });
  cleanups.push(() => server.destroy());
  const lines: string[] = [];
  const logger = createLogger({ level: "info", write: (line) => void lines.push(line) });
  const th = await startNatsHost(server, { sink: AUTH, logger });
  cleanups.push(() => th.destroy());
  const nc = await client(server, { user: AUTH.user, pass: AUTH.password });
  cleanups.push(() => nc.close());
  const metrics = () => th.host.metrics.render();
  const subscribed = (value: 0 | 1) => metrics().includes(`kubemeta_nats_replay_subscribed{sink="nats"} ${value}\n`);
  return { server, th, lines, nc, metrics, subscribed };
}

test(
  "a replay subscription the server refuses is counted and logged, and made again, at each reconnect too",
  async () => {
    const { server, lines, nc, metrics } = await startReplayHost();
    expect(metrics()).toMatch(/kubemeta_nats_replay_subscription_failures_total\{sink="nats"\} \d+\n/);
    await waitFor(() => refusalsCounted(metrics()) >= 1, 10_000, "the refusal counted");
    // Counted when the server's refusal arrives; logged once the round trip after the SUB is back, maybe a read later.
    const logged = () => lines.some((line) => line.includes("the NATS server refused the replay subscription"));
    await waitFor(logged, 10_000, "the refusal logged");
    await expect(replay(nc, REPLAY, { stream: "all" }, 1_000, 1, 200)).rejects.toThrow("no responders");

    // Refused again after a reconnect while the permission is missing.
    await server.restart();
    await waitFor(() => metrics().includes(RECONNECTED_ONCE), 10_000, "the reconnect");
    const reconnectedAt = refusalsCounted(metrics());
    await waitFor(() => refusalsCounted(metrics()) > reconnectedAt, 10_000, "the refusal after a reconnect");

    // The permission granted, as an operator would; the server's restart is the sink's reconnect.
    await server.restart({ auth: AUTH });
    // A request sent while the client redials is lost (nats.js drops what it buffered at each dial) and is asked
    // again after the silence: 3 s of it, as a second is short for a round trip on a machine loaded by other tests.
    const answered = await replay(nc, REPLAY, { stream: "all" }, 3_000, 5, 10_000);
    expect(answered.at(-1)?.last).toBe(true);
  },
  SLOW_MS,
);

test(
  "a refused replay subscription is tried again on a backoff: a reload granting it turns replay on, no reconnect",
  async () => {
    const { server, lines, nc, metrics } = await startReplayHost();
    // Tried again while connected, not only at a reconnect (reconnect.max is 200 ms here).
    await waitFor(() => refusalsCounted(metrics()) >= 3, 10_000, "the subscription tried again and refused");
    await expect(replay(nc, REPLAY, { stream: "all" }, 1_000, 1, 200)).rejects.toThrow("no responders");

    await server.reload({ auth: AUTH });
    const answered = await replay(nc, REPLAY, { stream: "all" }, 1_000, 5, 10_000);
    expect(answered.at(-1)?.last).toBe(true);
    expect(metrics()).toContain('kubemeta_nats_reconnects_total{sink="nats"} 0');
    expect(metrics()).toContain('kubemeta_nats_connected{sink="nats"} 1');
    expect(lines.filter((line) => line.includes('"msg":"connected to NATS"'))).toHaveLength(1);
  },
  SLOW_MS,
);

test(
  "kubemeta_nats_replay_subscribed is 1 while the replay subscription stands, 0 while refused or disconnected",
  async () => {
    const { server, metrics, subscribed } = await startReplayHost();
    expect(subscribed(0)).toBe(true);
    await waitFor(() => refusalsCounted(metrics()) >= 1, 10_000, "the refusal counted");
    expect(subscribed(0)).toBe(true);

    await server.reload({ auth: AUTH });
    await waitFor(() => subscribed(1), 10_000, "subscribed once the permission is granted");

    await server.stop();
    await waitFor(() => subscribed(0), 10_000, "0 while disconnected");
    await server.restart();
    await waitFor(() => subscribed(1), 10_000, "1 again after the reconnect");
    expect(metrics()).toContain(RECONNECTED_ONCE);
  },
  SLOW_MS,
);

test(
  "a reload that takes the permission away drops the replay subscription: counted, 0, and made again once granted",
  async () => {
    const { server, nc, metrics, subscribed } = await startReplayHost(AUTH);
    await waitFor(() => subscribed(1), 10_000, "the replay subscription standing");
    expect((await replay(nc, REPLAY, { stream: "all" })).at(-1)?.last).toBe(true);

    // The server drops the subscription and says so, naming its sid but not its queue group.
    await server.reload({ auth: { ...AUTH, subscribeDeny: [REPLAY] } });
    await waitFor(() => subscribed(0) && refusalsCounted(metrics()) >= 1, 10_000, "the drop seen as a refusal");

    await server.reload({ auth: AUTH });
    await waitFor(() => subscribed(1), 10_000, "subscribed again once granted");
    expect((await replay(nc, REPLAY, { stream: "all" }, 1_000, 5, 10_000)).at(-1)?.last).toBe(true);
    expect(metrics()).toContain('kubemeta_nats_reconnects_total{sink="nats"} 0');
  },
  SLOW_MS,
);

test(
  "a refused publish is one line a minute naming the subject, the user and the README's Permissions; a refused " +
    "replay subscription is its own line alone",
  async () => {
    const ALL = `${PREFIX}.all`;
    const { th, lines, nc, metrics } = await startReplayHost({ ...AUTH, subscribeDeny: [REPLAY], publishDeny: [ALL] });
    await waitFor(() => refusalsCounted(metrics()) >= 1, 10_000, "the replay subscription refused");
    const delivered: string[] = [];
    nc.subscribe(`${PREFIX}.node.>`, { callback: (_, msg) => void delivered.push(msg.subject) });
    await nc.flush();
    // Each update goes to `all` (refused, after the fact) and then to its node's subject (delivered).
    const nodes = nodeNames(3);
    for (const [i, node] of nodes.entries()) {
      await th.changes.apply("nodes", "ADDED", rawNode(node));
      await th.changes.flush();
      await waitFor(() => delivered.length > i, 10_000, `the update of ${node} on its node's subject`);
    }
    await sinkCaughtUp(th, "nats");
    const logged = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const refusedPublishes = () =>
      logged().filter((line) => String(line.msg).startsWith("the NATS server refused a publish"));
    await waitFor(() => refusedPublishes().length > 0, 10_000, "the refused publish logged");
    expect(refusedPublishes()).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: `the NATS server refused a publish: kubemeta's NATS user may not publish there (${PERMISSIONS})`,
        subject: ALL,
        user: AUTH.user,
      }),
    ]);
    const replayRefusals = logged().filter((line) => String(line.msg).includes("refused the replay subscription"));
    expect(replayRefusals).toEqual([
      expect.objectContaining({
        msg: `the NATS server refused the replay subscription (${PERMISSIONS}); subscribing again on a backoff`,
        subject: REPLAY,
        user: AUTH.user,
      }),
    ]);
    // Neither is said again as the server's words alone, which took the minute's one line of any other server error.
    expect(logged().filter((line) => line.msg === "NATS: error")).toEqual([]);
    const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
    expect(readme.slice(readme.indexOf("\n## NATS:")).split("\n## ")[1]).toContain("\n### Permissions\n");
  },
  SLOW_MS,
);
