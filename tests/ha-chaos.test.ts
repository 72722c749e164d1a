/**
 * Chaos with replicas: tests/chaos.test.ts's overlapping seeded faults on three kubemeta replicas (`ha`, one remote
 * store on the test libSQL server, the simulator's Lease) under pod and namespace churn. Consumers follow different
 * replicas throughout: the client library over SSE on replica-0 and on replica-1 (each followed through its
 * restarts), over SSE behind a Service that prefers replica-2 and moves to another while it is down, over NATS on
 * `all`, and a curl SSE consumer of replica-2 that reconnects with its last event id. Each round holds at least one
 * lasting fault (the store server stopped, the leader's path to the store cut, nats-server down) and, inside it, one
 * restart (kill -9 of the leader or of a follower, SIGTERM of either, in turn; the replica started again once it can
 * reach the store) and seeded others (watch 410s as a status and as an ERROR event, 429 with Retry-After, 500s).
 * Once churn stops and the faults heal, the store must equal the API server, its versions gap-free with whole prev
 * chains, and every consumer must have applied each version once, the store's update of it, with no RESET: a
 * failover causes none (README, High availability).
 *
 * KUBEMETA_FAULT_SEED=<n> replays a run (the seed is printed); KUBEMETA_CHAOS_SECONDS sets its length (default 21).
 */
import { afterEach, expect, test } from "bun:test";
import { connect } from "@nats-io/transport-node";
import { subscribeNats, subscribeSse, type Subscription } from "../client/index.ts";
import { digest } from "../core/slim.ts";
import { seededRandom } from "../simulator/population.ts";
import { expectGapFreeWithWholeChains, waitFor } from "../testing/index.ts";
import {
  chaosRun,
  syncedCurlFollower,
  expectCurlWhole,
  type Instant,
  type Lasting,
  playRound,
  startChurns,
} from "./chaos-parts.ts";
import { cleanups, expectFollowedWholly, recorder, runCleanups } from "./faults-cluster.ts";
import { replicaSet, restartableStore } from "./ha-chaos-parts.ts";
import { service, setupHa } from "./ha-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { versionsOf } from "./sse-client.ts";

const { seed: SEED, seconds: SECONDS, rounds } = chaosRun("ha-chaos.test.ts");
const REPLICAS = 3;

afterEach(runCleanups);

test(
  "chaos with three replicas: overlapping faults under churn, consumers of every replica equal the truth",
  async () => {
    const random = seededRandom(SEED);
    const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
    const nats = await startNatsServer();
    cleanups.push(() => nats.destroy());
    // The store's timeout short, so that a cut path fails commits soon (as in tests/ha-partition.test.ts).
    const env = await setupHa({
      replicas: REPLICAS,
      storePaths: true,
      storeTimeout: "2s",
      sinks: ["  - type: nats", `    servers: ["${nats.url}"]`],
      settings: ["shutdownTimeout: 3s"],
    });
    cleanups.push(env.destroy);
    const store = restartableStore(env);
    const replicas = replicaSet(env, REPLICAS, store.up);
    await env.leading(await replicas.start(0));
    for (let i = 1; i < REPLICAS; i++) await env.ready(await replicas.start(i));

    const consumers: Array<{ name: string; rec: ReturnType<typeof recorder>; sub: Subscription }> = [];
    const follow = (name: string, subscribe: (rec: ReturnType<typeof recorder>) => Subscription) => {
      const rec = recorder();
      const sub = subscribe(rec);
      cleanups.push(() => sub.stop());
      consumers.push({ name, rec, sub });
    };
    const reconnect = { initialMs: 50, maxMs: 300 };
    const sse = (url: string) => (rec: ReturnType<typeof recorder>) =>
      subscribeSse({ url, streams: ["all"], reconnect, ...rec.handlers });
    follow("sse replica-0", sse(replicas.running[0]!.url));
    follow("sse replica-1", sse(replicas.running[1]!.url));
    const front = service(() => {
      const alive = replicas.alive();
      const home = replicas.running[2];
      return home ? [home] : alive;
    });
    cleanups.push(front.stop);
    follow("sse service", sse(front.url));
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    cleanups.push(() => nc.close());
    follow("nats all", (rec) =>
      subscribeNats({ nc, cluster: "faults", streams: ["all"], retry: { maxMs: 300 }, ...rec.handlers }),
    );
    const curl = await syncedCurlFollower(env.dir, replicas.running[2]!.url);
    await Promise.all(consumers.map((c) => c.sub.synced));

    const churn = startChurns(env.server, { pods: 40, namespaces: 4, seed: SEED });

    const lasting: Lasting[] = [
      { name: "nats-server down", start: () => nats.stop(), end: () => nats.restart() },
      { name: "store down", start: () => store.stop(), end: () => store.start() },
      {
        name: "leader's store path cut",
        start: () => env.storePaths[replicas.leader() ?? 0]!.partition(),
        end: () => {
          for (const path of env.storePaths) path.heal();
        },
      },
    ];
    /** The leader (as the Lease says) or a follower, at the moment the fault lands. */
    const target = (leader: boolean) => {
      const lead = replicas.leader();
      if (leader) return lead ?? 0;
      return pick([...replicas.running.keys()].filter((i) => i !== lead));
    };
    const resources = ["pods", "nodes", "namespaces", "services", "endpointslices"];
    const watchFault = (status: 410 | 429 | 500, as?: "status" | "event") => {
      const resource = pick(resources);
      return () => env.server.failNext({ verb: "watch", resource, status, as, retryAfterSeconds: 1 });
    };
    /** Instant faults, each drawn (its seeded choices made) when a round is planned. */
    const instant: Instant[] = [
      { name: "kill -9 of the leader", restarts: true, draw: () => () => replicas.restart(target(true), "SIGKILL") },
      { name: "kill -9 of a follower", restarts: true, draw: () => () => replicas.restart(target(false), "SIGKILL") },
      { name: "SIGTERM of the leader", restarts: true, draw: () => () => replicas.restart(target(true), "SIGTERM") },
      { name: "SIGTERM of a follower", restarts: true, draw: () => () => replicas.restart(target(false), "SIGTERM") },
      { name: "watch 410 event", draw: () => watchFault(410, "event") },
      { name: "watch 410 status", draw: () => watchFault(410, "status") },
      { name: "watch 429", draw: () => watchFault(429) },
      { name: "watch 500", draw: () => watchFault(500) },
    ];

    const restarts = instant.filter((i) => i.restarts);
    const firstRestart = Math.floor(random() * restarts.length);
    for (let round = 0; round < rounds; round++) {
      // Lasting faults span the middle of the round, instant ones land inside that middle: every pair overlaps.
      const spans = lasting.filter(() => random() < 0.4);
      if (spans.length === 0) spans.push(pick(lasting));
      // One restart a round, in turn from a seeded one: a short run kills the leader and a follower alike.
      const restarting = restarts[(round + firstRestart) % restarts.length]!;
      const shots = instant.filter((i) => !i.restarts && random() < 0.3).concat(restarting);
      await playRound(round, spans, shots, random);
    }
    churn.stop();
    console.log(
      `${churn.summary()}; ` +
        `${replicas.processes.length} kubemeta processes (${replicas.failedStarts()} starts failed on the store); ` +
        `exits ${JSON.stringify(replicas.exits)}; ${curl.connections()} curl connections`,
    );

    const ended = replicas.processes.flatMap(({ out }) => out.lines("no longer leading; following the store"));
    const terms = replicas.processes.flatMap(({ out }) =>
      out.lines("leading: this replica writes the store and runs the sources"),
    );
    console.log(`${terms.length} terms; ended: ${JSON.stringify(ended.map((line) => line.reason))}`);
    const leader = await waitFor(() => replicas.running[replicas.leader() ?? -1], 30_000, "a replica to lead");
    for (const replica of [leader, ...replicas.alive()])
      await waitFor(() => env.matchesTruth(replica.url), 60_000, `${replica.identity} to equal the API server`);
    const updates = await env.allUpdates();
    expectGapFreeWithWholeChains(updates);
    const head = updates.at(-1)!.version;
    const state = await env.storeState();
    const truth = env.truth();
    for (const { name, rec, sub } of consumers) {
      await expectFollowedWholly(rec, sub, updates, state);
      const held = new Map([...sub.objects("all").values()].map((e) => [`${e.kind}/${e.uid}`, digest(e.object)]));
      expect(held, `${name}'s objects equal the API server's`).toEqual(truth);
    }
    await waitFor(async () => versionsOf(await curl.events()).includes(head), 20_000, "curl to get the head");
    await expectCurlWhole(curl, updates, state);

    // A SIGTERM ends in time (exit 0), or runs out of shutdownTimeout on a step the store does not answer (exit 1).
    for (const { signal, code } of replicas.exits) if (signal === "SIGTERM") expect([0, 1]).toContain(code);
    // A store that is down or cut off fails commits, and a new term's sinks their cursors' loads and saves (an error at
    // each outage's first), and a SIGTERM then runs out of shutdownTimeout (README, High availability: the Lease is
    // given back all the same).
    const storeAway = [
      "store commit failed; retrying",
      "saving the sink's cursor failed",
      "sink failed to load its cursor; retrying",
      "shutdown timed out; ",
    ];
    const errors = replicas.processes.flatMap(({ out }) =>
      out.text
        .split("\n")
        .filter((l) => l.includes('"level":"error"') && !storeAway.some((msg) => l.includes(`"msg":"${msg}`))),
    );
    expect(errors).toEqual([]);
  },
  SECONDS * 1000 + 180_000,
);
