/**
 * What tests/chaos.test.ts runs besides kubemeta: an SSE consumer that is a real process (curl) and reconnects with
 * its last event id as an EventSource does, and the churn startChurn does not make (namespaces created and deleted
 * with what they hold, pods created unscheduled and bound later, pods recreated on another node).
 */
import { expect } from "bun:test";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Envelope } from "../protocol/envelope.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import type { TestApiServer } from "../simulator/index.ts";
import { makePod, seededRandom, startChurn } from "../simulator/population.ts";
import { makeEndpointSlice, makeService } from "../simulator/networking.ts";
import { makeNamespace } from "../simulator/workloads.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups } from "./faults-cluster.ts";
import { json, SseParser, type SseEvent } from "./sse-client.ts";

/** The delay an EventSource waits before it reconnects (kubemeta's `retry:` would be longer: tests want it short). */
const RECONNECT_MS = 100;

/**
 * `curl -N` on `<url>/v1/watch?stream=all`, one output file per connection. Each connection that ends (kubemeta gone,
 * an OVERFLOW, a shutdown) is followed by another sent the last event id the ones before dispatched.
 */
export function curlFollower(dir: string, url: string) {
  const files: string[] = [];
  let proc: Subprocess | undefined;
  let lastEventId = "";
  let stopped = false;
  let paused: Promise<void> | undefined;
  let unpause: (() => void) | undefined;

  /** The events of one connection's file, and the last event id once they are dispatched (given the one before). */
  const parse = async (file: string, idBefore: string) => {
    const events: SseEvent[] = [];
    const parser = new SseParser((event) => events.push(event));
    parser.lastEventId = idBefore;
    if (await Bun.file(file).exists()) parser.push(await Bun.file(file).text());
    return { events, lastEventId: parser.lastEventId };
  };

  const loop = (async () => {
    while (!stopped) {
      await paused;
      const file = join(dir, `curl-${files.length}.sse`);
      files.push(file);
      const header = lastEventId ? ["-H", `Last-Event-ID: ${lastEventId}`] : [];
      proc = Bun.spawn(["curl", "-sN", "-o", file, ...header, `${url}/v1/watch?stream=all`], {
        stdout: "ignore",
        stderr: "ignore",
      });
      await proc.exited;
      lastEventId = (await parse(file, lastEventId)).lastEventId;
      if (!stopped) await Bun.sleep(RECONNECT_MS);
    }
  })();

  /** Every event of every connection so far, in order. */
  const events = async () => {
    const all: SseEvent[] = [];
    let id = "";
    for (const file of files) {
      const parsed = await parse(file, id);
      all.push(...parsed.events);
      id = parsed.lastEventId;
    }
    return all;
  };

  return {
    events,
    connections: () => files.length,
    /** SIGSTOP: a consumer that reads nothing; no new connection either until `resume`. */
    pause() {
      paused ??= new Promise((resolve) => (unpause = resolve));
      proc?.kill("SIGSTOP");
    },
    resume() {
      proc?.kill("SIGCONT");
      unpause?.();
      paused = undefined;
    },
    async stop() {
      stopped = true;
      this.resume();
      proc?.kill("SIGKILL");
      await loop;
    },
  };
}

/**
 * The curl consumer got every version after its first SYNCED once and in order, each the store's update of that
 * version, never a RESET after it, and what it holds equals the store.
 */
export async function expectCurlWhole(
  follower: ReturnType<typeof curlFollower>,
  updates: Update[],
  state: Map<string, number>,
): Promise<void> {
  const events = await follower.events();
  const first = events.findIndex((e) => e.type === "SYNCED");
  const syncedAt = json<{ version: number }>(events[first]!).version;
  const live = events.slice(first + 1);
  expect(live.filter((e) => e.type === "RESET")).toEqual([]);
  const applied = live.filter((e) => ["ADDED", "MODIFIED", "DELETED"].includes(e.type)).map((e) => json<Envelope>(e));
  const after = updates.filter((u) => u.version > syncedAt);
  expect(applied.map((e) => `${e.version} ${e.type} ${e.uid} ${e.resourceVersion}`)).toEqual(
    after.map((u) => `${u.version} ${u.type} ${u.uid} ${u.resourceVersion}`),
  );
  const held = new Map<string, number>();
  for (const event of events) {
    if (event.type === "RESET") held.clear();
    if (!["ADDED", "MODIFIED", "DELETED"].includes(event.type)) continue;
    const e = json<Envelope>(event);
    if (e.type === "DELETED") held.delete(e.uid);
    else held.set(e.uid, e.version);
  }
  expect(held).toEqual(state);
}

/** A curlFollower of `url`, stopped after the test, once its first connection has dispatched SYNCED. */
export async function syncedCurlFollower(dir: string, url: string): Promise<ReturnType<typeof curlFollower>> {
  const curl = curlFollower(dir, url);
  cleanups.push(() => curl.stop());
  await waitFor(async () => (await curl.events()).some((e) => e.type === "SYNCED"), 10_000, "curl to sync");
  return curl;
}

/** The API server's pod churn and namespace churn, both seeded; stopped after the test, or by `stop()` before. */
export function startChurns(server: TestApiServer, opts: { pods: number; namespaces: number; seed: number }) {
  const pods = startChurn(server, { perSecond: opts.pods, seed: opts.seed });
  const namespaces = startNamespaceChurn(server, { perSecond: opts.namespaces, seed: opts.seed });
  const stop = () => {
    pods.stop();
    namespaces.stop();
  };
  cleanups.push(stop);
  return { stop, summary: () => `churn: ${pods.changes()} pod changes, ${namespaces.steps()} namespace steps` };
}

/**
 * Churn of whole namespaces, `perSecond` steps at seeded choices: a namespace made with a Service, its EndpointSlice
 * and pods (some unscheduled); a namespace deleted as the namespace controller does (pods, slices, Services, then the
 * namespace); an unscheduled pod bound to a node; a pod deleted and made again under its name on another node (a
 * StatefulSet's pod rescheduled: a new uid); a Service relabelled.
 */
export function startNamespaceChurn(server: TestApiServer, opts: { perSecond: number; seed: number }) {
  const random = seededRandom(opts.seed);
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const nodes = server.names("Node").map(({ name }) => name);
  const namespaces: string[] = [];
  let made = 0;
  let steps = 0;
  const pods = (namespace: string) => server.list("Pod").filter((p) => p.metadata!.namespace === namespace);
  const nodeOf = (pod: KubeObject) => (pod.spec as { nodeName?: string }).nodeName;

  const create = () => {
    const namespace = `chaos-${opts.seed.toString(36)}-${(made++).toString(36)}`;
    server.create(makeNamespace(namespace));
    const service = server.create(makeService("app", namespace, `172.30.${made >> 8}.${made & 255}`));
    const endpoints = [];
    for (let i = 0; i < 2 + Math.floor(random() * 4); i++) {
      const node = random() < 0.3 ? undefined : pick(nodes);
      const pod = server.create(makePod({ name: `app-${i}`, namespace, node, labels: { app: "app" } }));
      const ip = (pod.status as { podIP?: string }).podIP;
      if (node && ip) endpoints.push({ ip, node, pod: { name: `app-${i}`, uid: pod.metadata!.uid! } });
    }
    const owner = { kind: "Service", name: "app", uid: service.metadata!.uid! };
    server.create(makeEndpointSlice(owner, namespace, endpoints));
    namespaces.push(namespace);
  };

  const remove = (namespace: string) => {
    for (const pod of pods(namespace)) server.delete("Pod", namespace, pod.metadata!.name!);
    for (const kind of ["EndpointSlice", "Service"])
      for (const { name } of server.names(kind).filter((o) => o.namespace === namespace))
        server.delete(kind, namespace, name);
    server.delete("Namespace", null, namespace);
    namespaces.splice(namespaces.indexOf(namespace), 1);
  };

  const step = () => {
    const choice = random();
    if (namespaces.length < 3 || (choice < 0.15 && namespaces.length < 8)) return create();
    const namespace = pick(namespaces);
    if (choice < 0.3) return remove(namespace);
    const inIt = pods(namespace);
    const unbound = inIt.filter((p) => !nodeOf(p));
    if (choice < 0.55 && unbound.length > 0) {
      server.patch("Pod", namespace, pick(unbound).metadata!.name!, (pod) => {
        (pod.spec as { nodeName?: string }).nodeName = pick(nodes);
        Object.assign(pod.status as object, { phase: "Running", hostIP: "10.0.0.1" });
      });
      return;
    }
    if (choice < 0.85 && inIt.length > 0) {
      const pod = pick(inIt);
      const node = nodeOf(pod);
      server.delete("Pod", namespace, pod.metadata!.name!);
      const elsewhere = pick(nodes.filter((n) => n !== node));
      server.create(makePod({ name: pod.metadata!.name!, namespace, node: elsewhere, labels: { app: "app" } }));
      return;
    }
    server.patch("Service", namespace, "app", (service) => {
      service.metadata!.labels = { app: "app", "chaos.kubemeta.dev/step": String(steps) };
    });
  };

  const timer = setInterval(() => {
    step();
    steps++;
  }, 1000 / opts.perSecond);
  return {
    steps: () => steps,
    stop: () => clearInterval(timer),
  };
}

/** A round of a chaos run: its faults' moments are drawn within it. */
const ROUND_MS = 7_000;

/**
 * A chaos run's seed (`KUBEMETA_FAULT_SEED`) and length (`KUBEMETA_CHAOS_SECONDS`, 21 s by default: a CI run), printed
 * so that a failing run can be replayed, and its rounds.
 */
export function chaosRun(file: string): { seed: number; seconds: number; rounds: number } {
  const seed = Number(process.env.KUBEMETA_FAULT_SEED ?? 20261206);
  const seconds = Number(process.env.KUBEMETA_CHAOS_SECONDS ?? 21);
  console.log(`${file} seed: ${seed} (KUBEMETA_FAULT_SEED=${seed} replays it), ${seconds} s of chaos`);
  return { seed, seconds, rounds: Math.max(1, Math.round((seconds * 1000) / ROUND_MS)) };
}

/** A fault over a span of a round: `start` begins it, `end` heals it. */
export interface Lasting {
  name: string;
  start(): unknown;
  end(): unknown;
}

/** A fault at one moment: `draw` makes its seeded choices when the round is planned, the function it returns acts. */
export interface Instant {
  name: string;
  restarts?: boolean;
  draw(): () => unknown;
}

/**
 * One round, printed as planned: each lasting fault from a seeded moment in the round's first quarter to
 * one past its middle, each instant one inside that middle, so that every pair of them overlaps.
 */
export async function playRound(
  round: number,
  spans: Lasting[],
  shots: Instant[],
  random: () => number,
): Promise<void> {
  const begun = performance.now();
  const at = (ms: number) => Bun.sleep(Math.max(0, begun + ms - performance.now()));
  const plan: string[] = [];
  const tasks = spans.map(async (fault) => {
    const from = Math.floor(random() * ROUND_MS * 0.25);
    const to = Math.floor(ROUND_MS * (0.6 + random() * 0.3));
    plan.push(`${fault.name} ${from}-${to} ms`);
    await at(from);
    await fault.start();
    await at(to);
    await fault.end();
  });
  for (const shot of shots) {
    const when = Math.floor(ROUND_MS * (0.3 + random() * 0.25));
    const run = shot.draw();
    plan.push(`${shot.name} at ${when} ms`);
    tasks.push(at(when).then(async () => void (await run())));
  }
  console.log(`round ${round}: ${plan.join(", ")}`);
  await Promise.all(tasks);
  await at(ROUND_MS);
}
