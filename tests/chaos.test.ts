/**
 * Chaos: the faults of tests/faults*.test.ts overlapping, at seeded moments, under churn. kubemeta is a real process
 * (main.ts) with a libSQL file store and its SSE, NATS and webhook sinks; consumers follow throughout: the client
 * library over NATS (`all`, and a node agent's `node/<node>` + `shared`) and over SSE, a curl SSE consumer that
 * reconnects with its last event id, and a webhook receiver. Each round holds at least one lasting fault (nats-server
 * down, the curl consumer stopped, the receiver refusing or answering 503, kubemeta SIGSTOPped, watches stalled)
 * and, inside it, at least one instant one (kill -9 or SIGTERM of kubemeta and a restart, or two kills, the second in
 * the start-up; watch 410s as a status and as an ERROR event, 429 with Retry-After, 500s, a LIST 500, dropped
 * watches, a compaction). Once churn stops and the faults heal, every consumer must equal the truth.
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
import { cleanups, expectFollowedWholly, type Kubemeta, recorder, runCleanups, setup } from "./faults-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { exitWithin } from "./reliability-process.ts";
import { versionsOf } from "./sse-client.ts";
import { deduplicated, SECRET, startReceiver } from "./webhook-receiver.ts";

const { seed: SEED, seconds: SECONDS, rounds } = chaosRun("chaos.test.ts");

afterEach(runCleanups);

test(
  "chaos: overlapping faults under churn, every consumer equals the truth",
  async () => {
    const random = seededRandom(SEED);
    const nats = await startNatsServer();
    cleanups.push(() => nats.destroy());
    const receiver = await startReceiver();
    cleanups.push(() => receiver.stop());
    const env = await setup({
      sse: "{ type: sse, bufferBytes: 65536 }",
      sinks: [
        "  - type: nats",
        `    servers: ["${nats.url}"]`,
        "  - type: webhook",
        `    url: ${receiver.url}`,
        `    secret: ${SECRET}`,
        "    timeout: 2s",
        "    batch: { linger: 20ms }",
        "    retry: { initial: 100ms, max: 1s }",
      ],
    });
    const processes: Kubemeta[] = [await env.start()];
    await env.ready();

    const node = env.server.names("Node")[0]!.name;
    const agentStreams = [`node/${node}`, "shared"];
    const natsConnection = () => connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    const [ncAll, ncAgent] = [await natsConnection(), await natsConnection()];
    cleanups.push(
      () => ncAll.close(),
      () => ncAgent.close(),
    );
    const consumers: Array<{ name: string; rec: ReturnType<typeof recorder>; sub: Subscription; streams: string[] }> =
      [];
    const follow = (name: string, streams: string[], subscribe: (rec: ReturnType<typeof recorder>) => Subscription) => {
      const rec = recorder();
      const sub = subscribe(rec);
      cleanups.push(() => sub.stop());
      consumers.push({ name, rec, sub, streams });
    };
    const retry = { maxMs: 300 };
    follow("nats all", ["all"], (rec) =>
      subscribeNats({ nc: ncAll, cluster: "faults", streams: ["all"], retry, ...rec.handlers }),
    );
    follow("nats agent", agentStreams, (rec) =>
      subscribeNats({ nc: ncAgent, cluster: "faults", streams: agentStreams, retry, ...rec.handlers }),
    );
    follow("sse all", ["all"], (rec) =>
      subscribeSse({ url: env.url, streams: ["all"], reconnect: { initialMs: 50, maxMs: 300 }, ...rec.handlers }),
    );
    const curl = await syncedCurlFollower(env.dir, env.url);
    await Promise.all(consumers.map((c) => c.sub.synced));

    const churn = startChurns(env.server, { pods: 60, namespaces: 5, seed: SEED });

    const lasting: Lasting[] = [
      { name: "nats-server down", start: () => nats.stop(), end: () => nats.restart() },
      { name: "curl stopped", start: () => curl.pause(), end: () => curl.resume() },
      {
        name: "webhook 503",
        start: () => (receiver.respond = () => new Response("busy", { status: 503 })),
        end: () => (receiver.respond = () => new Response("ok")),
      },
      { name: "webhook refused", start: () => receiver.stop(), end: () => receiver.start() },
      {
        name: "kubemeta paused",
        start: () => processes.at(-1)!.proc.kill("SIGSTOP"),
        // Every process it may have stopped: a restart meanwhile stops no new one, and a dead one ignores it.
        end: () => {
          for (const { proc } of processes) proc.kill("SIGCONT");
        },
      },
      {
        name: "watches stalled",
        start: () => env.server.stallWatches(true),
        end: () => env.server.stallWatches(false),
      },
    ];
    const restart = async (signal: "SIGKILL" | "SIGTERM") => {
      const current = processes.at(-1)!;
      current.proc.kill(signal);
      const code = await exitWithin(current.proc, 20_000);
      if (signal === "SIGTERM") expect(code).toBe(0);
      processes.push(await env.start());
    };
    const resources = ["pods", "nodes", "namespaces", "services", "endpointslices"];
    const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
    const watchFault = (status: 410 | 429 | 500, as?: "status" | "event") => {
      const resource = pick(resources);
      return () => env.server.failNext({ verb: "watch", resource, status, as, retryAfterSeconds: 1 });
    };
    /** Instant faults, each drawn (its seeded choices made) when a round is planned; at most one restart a round. */
    const instant: Instant[] = [
      { name: "kill -9", restarts: true, draw: () => () => restart("SIGKILL") },
      { name: "SIGTERM", restarts: true, draw: () => () => restart("SIGTERM") },
      {
        name: "kill -9 in start-up",
        restarts: true,
        draw: () => {
          const after = Math.floor(random() * 1_000);
          return async () => {
            await restart("SIGKILL");
            await Bun.sleep(after);
            await restart("SIGKILL");
          };
        },
      },
      { name: "watch 410 event", draw: () => watchFault(410, "event") },
      { name: "watch 410 status", draw: () => watchFault(410, "status") },
      { name: "watch 429", draw: () => watchFault(429) },
      { name: "watch 500", draw: () => watchFault(500) },
      {
        name: "list 500",
        draw: () => {
          const resource = pick(resources);
          return () => env.server.failNext({ verb: "list", resource, status: 500 });
        },
      },
      { name: "watches dropped", draw: () => () => env.server.dropWatches() },
      { name: "compaction", draw: () => () => env.server.compact() },
    ];

    for (let round = 0; round < rounds; round++) {
      // Lasting faults span the middle of the round, instant ones land inside that middle: every pair overlaps.
      const spans = lasting.filter(() => random() < 0.4);
      if (spans.length === 0) spans.push(pick(lasting));
      const restarting = random() < 0.6 ? pick(instant.filter((i) => i.restarts)) : undefined;
      const shots = instant.filter((i) => !i.restarts && random() < 0.3).concat(restarting ?? []);
      if (shots.length === 0) shots.push(pick(instant));
      await playRound(round, spans, shots, random);
    }
    churn.stop();
    console.log(
      `${churn.summary()}; ` + `${processes.length} kubemeta processes; ${curl.connections()} curl connections`,
    );

    await waitFor(env.matchesTruth, 60_000, "the store to equal the API server");
    const updates = await env.allUpdates();
    expectGapFreeWithWholeChains(updates);
    const head = updates.at(-1)!.version;
    const truth = env.truth();
    const byVersion = new Map(updates.map((u) => [u.version, `${u.type} ${u.uid} ${u.resourceVersion}`]));

    for (const { name, rec, sub, streams } of consumers)
      for (const stream of streams) {
        await expectFollowedWholly(rec, sub, updates, await env.storeState(stream), stream);
        if (stream !== "all") continue;
        const held = new Map([...sub.objects(stream).values()].map((e) => [`${e.kind}/${e.uid}`, digest(e.object)]));
        expect(held, `${name}'s objects equal the API server's`).toEqual(truth);
      }
    // The node agent holds exactly its node and the pods bound to it.
    const bound = env.server.list("Pod").filter((p) => (p.spec as { nodeName?: string }).nodeName === node);
    const nodeUid = env.server.get("Node", null, node)!.metadata!.uid!;
    const agent = consumers.find((c) => c.name === "nats agent")!.sub;
    expect(new Set(agent.objects(`node/${node}`).keys())).toEqual(
      new Set([nodeUid, ...bound.map((p) => p.metadata!.uid!)]),
    );

    await waitFor(async () => versionsOf(await curl.events()).includes(head), 20_000, "curl to get the head");
    await expectCurlWhole(curl, updates, await env.storeState());

    // The webhook: every version at least once, each batch in order, each update the store's of its version.
    await waitFor(() => deduplicated(receiver.accepted()).at(-1) === head, 30_000, "the webhook to deliver all");
    expect(deduplicated(receiver.accepted())).toEqual(updates.map((u) => u.version));
    for (const { body } of receiver.requests) {
      expect(body.updates.map((u) => u.version)).toEqual(
        Array.from({ length: body.last - body.first + 1 }, (_, i) => body.first + i),
      );
      for (const u of body.updates) expect(`${u.type} ${u.uid} ${u.resourceVersion}`).toBe(byVersion.get(u.version)!);
    }

    const errors = processes.flatMap(({ out }) => out.text.split("\n").filter((l) => l.includes('"level":"error"')));
    expect(errors).toEqual([]);
  },
  SECONDS * 1000 + 150_000,
);
