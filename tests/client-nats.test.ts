/**
 * The client library over NATS against a real nats-server and a real host with the nats
 * sink: a node agent on `node/<name>` + `shared` converges after a gap, a kubemeta
 * restart, a nats-server restart and an epoch change, and its cache ends equal to the
 * store's state.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import type { NatsConnection, SubscriptionOptions } from "@nats-io/transport-node";
import { subscribeNats, type Subscription } from "../client/index.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { matchesStore, recorder, type Recorder } from "./client-recorder.ts";
import { rawPod, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import {
  churn,
  client,
  CLUSTER,
  nodeNames,
  PREFIX,
  rawNode,
  rawService,
  SLOW_MS,
  startNatsHost,
} from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const NODES = nodeNames(4);
const AGENT_NODE = NODES[1]!;
const STREAMS = [`node/${AGENT_NODE}`, SHARED];

let server: TestNatsServer;
const hosts: TestHost[] = [];
const connections: NatsConnection[] = [];
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  server = await startNatsServer();
}, SLOW_MS);
afterEach(async () => {
  for (const s of subscriptions.splice(0)) await s.stop();
  for (const nc of connections.splice(0)) await nc.close();
  for (const th of hosts.splice(0)) await th.destroy();
});
afterAll(async () => {
  await server?.destroy();
});

async function host(options: Parameters<typeof startNatsHost>[1] = {}): Promise<TestHost> {
  const th = await startNatsHost(server, options);
  hosts.push(th);
  return th;
}

/** Stops a host, keeping its store for the next one. */
async function stopHost(th: TestHost): Promise<void> {
  await th.stop();
  hosts.splice(hosts.indexOf(th), 1);
}

async function seed(th: TestHost, rounds: number[]): Promise<void> {
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  for (const n of rounds) await churn(th.changes, NODES, n);
  await th.changes.flush();
}

async function round(th: TestHost, n: number): Promise<void> {
  await churn(th.changes, NODES, n);
  await th.changes.flush();
}

/**
 * Seeds the host with nodes and `rounds` of churn, then starts an agent on its own connection and waits for its sync.
 */
async function syncedAgent(
  th: TestHost,
  rounds: number[],
  recheckMs?: number,
): Promise<{ r: Recorder; subscription: Subscription }> {
  await seed(th, rounds);
  const r = recorder();
  const nc = await client(server);
  connections.push(nc);
  const subscription = subscribeNats({
    nc,
    cluster: CLUSTER,
    streams: STREAMS,
    replayTimeoutMs: 1_000,
    retry: { initialMs: 20, maxMs: 200 },
    recheckMs,
    ...r.handlers,
  });
  subscriptions.push(subscription);
  await subscription.synced;
  return { r, subscription };
}

/**
 * Runs a host on the store in `dir` whose sink publishes under another prefix while `change` runs: its cursor moves
 * past updates the agent never receives. Stops it once it has published them.
 */
async function publishedElsewhere(dir: string, change: (th: TestHost) => Promise<void>): Promise<void> {
  const watcher = await client(server);
  connections.push(watcher);
  let published = 0;
  watcher.subscribe("elsewhere.all", {
    callback: (_error, msg) => {
      published = msg.json<Envelope>().version;
    },
  });
  await watcher.flush();
  const elsewhere = await host({ dir, sink: { prefix: "elsewhere" } });
  await change(elsewhere);
  await waitFor(() => published === elsewhere.host.log.head(), 5_000, "the sink to publish elsewhere");
  await stopHost(elsewhere);
}

const converged = (th: TestHost, subscription: Subscription, r: Recorder) => () =>
  matchesStore(th, subscription, STREAMS, r.view);

test(
  "a node agent syncs both its streams, then follows live updates",
  async () => {
    const th = await host();
    const { r, subscription } = await syncedAgent(th, [0, 1]);
    expect(await matchesStore(th, subscription, STREAMS, r.view)).toBe(true);
    expect(r.resets.map((info) => [info.stream, info.reason])).toEqual(
      expect.arrayContaining(STREAMS.map((s) => [s, "no-resume-point"])),
    );
    expect([...subscription.objects(STREAMS[0]!).values()].every((e) => e.node === AGENT_NODE)).toBe(true);

    await round(th, 2);
    await waitFor(converged(th, subscription, r), 5_000, "the live updates");
    expect(r.calls).toContain("DELETED web-1-0");
    expect(r.resets).toHaveLength(2);
    // The only trouble: replays asked before the sink had connected (reported, then asked again).
    expect(r.errors.filter((e) => !e.message.startsWith("no responders"))).toEqual([]);
  },
  SLOW_MS,
);

test(
  "a gap (updates published where the agent was not listening, over a kubemeta restart) is filled by a replay",
  async () => {
    const first = await host();
    const { r, subscription } = await syncedAgent(first, [0]);

    await stopHost(first);
    await publishedElsewhere(first.dir, (th) => round(th, 1));
    const missed = r.calls.length;

    const third = await host({ dir: first.dir });
    await round(third, 2);
    await waitFor(converged(third, subscription, r), 10_000, "the agent to fill the gap");
    // web-1-1 was added in the round the agent never saw: only the replay brought it.
    expect(r.calls.slice(missed)).toContain("ADDED web-1-1");
    expect(r.calls.slice(missed)).toContain("ADDED svc-1");
    expect(r.resets).toHaveLength(2);
  },
  SLOW_MS,
);

test(
  "a nats-server restart during churn: the agent catches up when its connection comes back",
  async () => {
    const th = await host();
    const { r, subscription } = await syncedAgent(th, [0]);

    await server.stop();
    await round(th, 1);
    await server.restart();
    await waitFor(converged(th, subscription, r), 10_000, "the agent to catch up after the restart");
    await round(th, 2);
    await waitFor(converged(th, subscription, r), 10_000, "live updates after the restart");
    expect(r.resets).toHaveLength(2);
  },
  SLOW_MS,
);

test(
  "updates the sink never published on the agent's subjects (its cursor past them) reach a quiet stream at a recheck",
  async () => {
    const first = await host();
    const { r, subscription } = await syncedAgent(first, [0], 300);

    // As when the sink went on from the head past what retention pruned: its cursor moves past the agent's changes
    // (the agent's own connection stays up: it sees no reconnect).
    await stopHost(first);
    await publishedElsewhere(first.dir, async (th) => {
      await th.changes.apply("pods", "DELETED", rawPod("web-1-0", { node: AGENT_NODE }));
      await th.changes.apply("pods", "ADDED", rawPod("quiet-1", { node: AGENT_NODE }));
      await th.changes.apply("services", "ADDED", rawService("quiet-svc"));
      await th.changes.flush();
    });

    // Back under the agent's prefix, with nothing new to publish: no message shows the agent a gap.
    const third = await host({ dir: first.dir });
    await waitFor(converged(third, subscription, r), 5_000, "the agent's recheck");
    expect(r.calls.slice(-3).sort()).toEqual(["ADDED quiet-1", "ADDED quiet-svc", "DELETED web-1-0"]);
  },
  SLOW_MS,
);

test("synced resolves once the subscription ends unsynced: at stop(), and when its connection closes", async () => {
  // No kubemeta answers replays under this prefix: no stream ever syncs.
  const follow = async () => {
    const nc = await client(server);
    connections.push(nc);
    const subscription = subscribeNats({
      nc,
      prefix: "nobody",
      streams: [SHARED],
      retry: { initialMs: 20, maxMs: 50 },
    });
    let settled = false;
    void subscription.synced.then(() => {
      settled = true;
    });
    return { nc, subscription, settled: () => settled };
  };
  const stopped = await follow();
  await stopped.nc.flush();
  expect(stopped.settled()).toBe(false);
  await stopped.subscription.stop();
  await waitFor(stopped.settled, 2_000, "synced to resolve after stop()");

  const closed = await follow();
  await closed.nc.flush();
  expect(closed.settled()).toBe(false);
  await closed.nc.close();
  await waitFor(closed.settled, 2_000, "synced to resolve once the connection closed");
  await closed.subscription.stop();
});

test("a process that closes its connection without stop() ends at once: no replay or recheck holds it", async () => {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "nats-client-close.ts")], {
    env: { ...process.env, NATS_URL: server.url },
    stderr: "pipe",
  });
  // Unanswered, the replay asked at start would wait out its silence (replayTimeoutMs: 5 s) and a recheck 5 minutes.
  const deadline = setTimeout(() => child.kill("SIGKILL"), 12_000);
  let closedAt = 0;
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr) {
      text += new TextDecoder().decode(chunk);
      if (closedAt === 0 && text.includes("closed")) closedAt = performance.now();
    }
    return text;
  })();
  const code = await child.exited;
  const exitedAt = performance.now();
  clearTimeout(deadline);
  expect(await stderr).toBe("closed\n");
  expect([code, child.signalCode]).toEqual([0, null]);
  expect(exitedAt - closedAt).toBeLessThan(2_000);
}, 15_000);

test(
  "the store is recreated (new epoch): a reset rebuilds the cache and reports vanished objects as deletes",
  async () => {
    const first = await host();
    const { r, subscription } = await syncedAgent(first, [0, 1]);
    const oldEpoch = first.host.epoch;

    await stopHost(first);
    const second = await host({ dir: await tempDir() });
    await seed(second, [5]);
    await waitFor(converged(second, subscription, r), 10_000, "the agent to take the new epoch");
    expect(r.resets.slice(2).map((info) => [info.stream, info.reason, info.previousEpoch, info.epoch])).toEqual(
      expect.arrayContaining(STREAMS.map((s) => [s, "other-epoch", oldEpoch, second.host.epoch])),
    );
    expect(r.calls).toContain("DELETED web-1-0");
    expect(r.calls).toContain("ADDED web-1-5");
    for (const stream of STREAMS)
      expect([...subscription.objects(stream).values()].every((e) => e.epoch === second.host.epoch)).toBe(true);
  },
  SLOW_MS,
);

test(
  "a reset after a new epoch that leaves an oversized object out is the stream's state: no second reset follows",
  async () => {
    const maxPayload = 4096;
    const small = await startNatsServer({ maxPayload });
    const wide = {
      labels: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`example.com/l-${i}`, "v".repeat(40)])),
    };
    const populate = async (th: TestHost) => {
      await th.changes.apply("pods", "ADDED", rawPod("too-large-for-a-message", wide));
      await th.changes.apply("pods", "ADDED", rawPod("fits"));
      await th.changes.flush();
    };
    try {
      const first = await startNatsHost(small);
      await populate(first);
      const nc = await client(small);
      const r = recorder();
      const retry = { initialMs: 20, maxMs: 200 };
      const subscription = subscribeNats({
        nc,
        cluster: CLUSTER,
        streams: [ALL],
        replayTimeoutMs: 1_000,
        retry,
        ...r.handlers,
      });
      await subscription.synced;
      await first.destroy();
      const second = await startNatsHost(small, { dir: await tempDir() });
      await populate(second);
      await waitFor(() => r.synced.some((info) => info.epoch === second.host.epoch), 10_000, "the new epoch synced");
      expect(r.resets.map((info) => [info.reason, info.previousEpoch, info.epoch])).toEqual([
        ["no-resume-point", undefined, first.host.epoch],
        ["other-epoch", first.host.epoch, second.host.epoch],
      ]);
      expect([...subscription.objects(ALL).values()].map((e) => e.name)).toEqual(["fits"]);
      await subscription.stop();
      await nc.close();
      await second.destroy();
    } finally {
      await small.destroy();
    }
  },
  SLOW_MS,
);

/** The connection, but the live message of version 3 on `all` is lost, once in each epoch. */
function losingVersion3(nc: NatsConnection): NatsConnection {
  const lost = new Set<string>();
  const subscribe = (subject: string, options: SubscriptionOptions = {}) => {
    const { callback } = options;
    if (subject !== `${PREFIX}.all` || !callback) return nc.subscribe(subject, options);
    return nc.subscribe(subject, {
      ...options,
      callback: (error, msg) => {
        const envelope = error ? undefined : msg.json<Envelope>();
        if (envelope?.version === 3 && !lost.has(envelope.epoch)) return void lost.add(envelope.epoch);
        callback(error, msg);
      },
    });
  };
  return new Proxy(nc, {
    get: (target, key) => (key === "subscribe" ? subscribe : Reflect.get(target, key, target)),
  });
}

test(
  "a gap in a new epoch where the old epoch had one (versions count from 1 again) is replayed too, and reported",
  async () => {
    const real = await client(server);
    connections.push(real);
    const r = recorder();
    const retry = { initialMs: 20, maxMs: 200 };
    const subscription = subscribeNats({
      nc: losingVersion3(real),
      cluster: CLUSTER,
      streams: [ALL],
      retry,
      ...r.handlers,
    });
    subscriptions.push(subscription);
    const synced = (th: TestHost) => () => matchesStore(th, subscription, [ALL], r.view);
    for (const epoch of ["a", "b"]) {
      const th = await host({ dir: await tempDir() });
      // Its first update tells the agent of the new epoch: the reset is over before version 3 comes.
      await th.changes.apply("pods", "ADDED", rawPod(`${epoch}-1`));
      await th.changes.flush();
      await waitFor(synced(th), 10_000, `the agent in epoch ${epoch}`);
      for (const n of [2, 3, 4]) await th.changes.apply("pods", "ADDED", rawPod(`${epoch}-${n}`));
      await th.changes.flush();
      await waitFor(synced(th), 10_000, `the agent to fill the gap at version 3 of epoch ${epoch}`);
      expect(r.calls).toContain(`ADDED ${epoch}-3`);
      await stopHost(th);
    }
    const gaps = r.errors.map((e) => e.message).filter((m) => m.startsWith("missed updates"));
    expect(gaps).toEqual([
      "missed updates of all between 2 and 3; replaying",
      "missed updates of all between 2 and 3; replaying",
    ]);
  },
  SLOW_MS,
);
