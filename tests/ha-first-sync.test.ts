/**
 * With `ha`, a new store's state is held back until the leader's first sync is done, on every replica: the leader
 * records the sync's end in the store, and a follower learns it by following the store. Until then a snapshot is what
 * the first lists brought so far, and a consumer that reconciled its cache with it would drop the rest. The sync is
 * held here by a custom resource the API server does not serve yet: the built-in resources are committed meanwhile.
 */
import { afterEach, expect, test } from "bun:test";
import type { Envelope } from "../protocol/envelope.ts";
import { waitFor } from "../testing/index.ts";
import { RESOURCES } from "./cluster-checks.ts";
import { cleanups, runCleanups } from "./faults-cluster.ts";
import { setupHa, type Replica } from "./ha-cluster.ts";
import { FAST_DISCOVERY, FOOBARS, fooBar, GVR, NOT_SERVED } from "./source-kubernetes-crd-fixtures.ts";
import { SseConnection } from "./sse-client.ts";

afterEach(runCleanups);

const FIRST_SYNC_UNDER_WAY = { error: "the store's first sync is under way; ask again later" };

/** Replicas whose source waits for FooBars, not served until `serveFooBars`. */
async function setupHeldSync(replicas: number) {
  const { initial, max } = FAST_DISCOVERY.discovery;
  const env = await setupHa({
    replicas,
    resources: [...RESOURCES, GVR],
    source: [`discovery: { initial: ${initial}, max: ${max} }`],
  });
  cleanups.push(env.destroy);
  const storePosition = () => env.withStore((store) => store.position());
  /** Every current object, as the store holds it. */
  const storeObjects = async () => (await env.withStore((store) => store.snapshot({}))).objects;
  /** The leader has synced every built-in resource (committed), and waits for FooBars only. */
  const waitsForFooBarsOnly = (leader: Replica) =>
    waitFor(
      async () => {
        const { waiting } = (await (await fetch(`${leader.url}/readyz`)).json()) as { waiting: string[] };
        return waiting.length === 1 && waiting[0]!.endsWith(NOT_SERVED) && (await storePosition()).head > 0;
      },
      30_000,
      "the leader to wait for FooBars only",
    );
  /** Serves FooBars with two objects, there before the first list of them. */
  const serveFooBars = () => {
    env.server.installResource(FOOBARS);
    env.server.create(fooBar("foo-a"));
    env.server.create(fooBar("foo-b"));
  };
  return { env, storePosition, storeObjects, waitsForFooBarsOnly, serveFooBars };
}

async function answerOf(replica: Replica, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${replica.url}${path}`);
  return { status: response.status, body: await response.json() };
}
const objectsOf = (replica: Replica) => answerOf(replica, "/v1/objects");
const readinessOf = (replica: Replica) => answerOf(replica, "/readyz");

/** The replica's /v1/objects once it answers 200: the whole state. */
const wholeState = (replica: Replica) =>
  waitFor(
    async () => {
      const { status, body } = await objectsOf(replica);
      return status === 200 ? (body as { version: number; items: Envelope[] }) : undefined;
    },
    30_000,
    `${replica.identity} to serve /v1/objects`,
  );

/** Whether the replica's log has reached `position` (`<epoch>:<version>`): a replay from there is served. */
async function followed(replica: Replica, position: string): Promise<boolean> {
  return (await fetch(`${replica.url}/v1/updates?stream=all&since=${position}`)).ok;
}

const fooBarNames = (items: { kind: string; name: string }[]) =>
  items.filter((item) => item.kind === "FooBar").map((item) => item.name);

test("a follower on a new store answers 503 and holds an SSE reset until the leader's first sync is done", async () => {
  const { env, storePosition, storeObjects, waitsForFooBarsOnly, serveFooBars } = await setupHeldSync(2);
  const leader = await env.start(0);
  await env.leading(leader);
  const follower = await env.start(1);
  const sse = await SseConnection.open(`${follower.url}/v1/watch?stream=all`);
  cleanups.push(() => sse.close());
  expect((await sse.next()).type).toBe("RESET");

  await waitsForFooBarsOnly(leader);
  const { epoch, head } = await storePosition();
  await waitFor(() => followed(follower, `${epoch}:${head}`), 10_000, "the follower to follow the leader");
  // The follower holds every object the leader committed, and still serves none of them as the state.
  for (const replica of [follower, leader])
    expect(await objectsOf(replica)).toEqual({ status: 503, body: FIRST_SYNC_UNDER_WAY });
  expect(sse.events.map((event) => event.type)).toEqual(["RESET"]);
  // Not ready either, as the leader is not: a Service sends no reader where /v1/objects would be a 503.
  expect(await readinessOf(follower)).toEqual({
    status: 503,
    body: { ready: false, waiting: ["the store's first sync is under way on the leader"] },
  });

  serveFooBars();
  const snapshot = await sse.takeUntil("SYNCED", 20_000);
  const added = snapshot.filter((event) => event.type === "ADDED").map((event) => JSON.parse(event.data) as Envelope);
  expect(fooBarNames(added)).toEqual(["foo-a", "foo-b"]);
  const state = await wholeState(follower);
  expect(fooBarNames(state.items)).toEqual(["foo-a", "foo-b"]);
  expect(await readinessOf(follower)).toEqual({ status: 200, body: { ready: true, waiting: [] } });
  // Nothing of the first sync was left out (nothing changes in the cluster meanwhile).
  const stored = (await storeObjects()).length;
  expect([added.length, state.items.length]).toEqual([stored, stored]);
}, 60_000);

test("a replica killed (kill -9) during its store's first sync waits for that sync again when restarted", async () => {
  const { env, storeObjects, waitsForFooBarsOnly, serveFooBars } = await setupHeldSync(1);
  const first = await env.start(0);
  await env.leading(first);
  await waitsForFooBarsOnly(first);
  first.proc.kill("SIGKILL");
  await first.proc.exited;

  // The store holds updates, but no first sync ended: following (the Lease not expired yet), then leading again.
  const again = await env.start(0);
  expect(await objectsOf(again)).toEqual({ status: 503, body: FIRST_SYNC_UNDER_WAY });
  await env.leading(again);
  await waitsForFooBarsOnly(again);
  expect(await objectsOf(again)).toEqual({ status: 503, body: FIRST_SYNC_UNDER_WAY });

  serveFooBars();
  const state = await wholeState(again);
  expect(fooBarNames(state.items)).toEqual(["foo-a", "foo-b"]);
  expect(state.items.length).toBe((await storeObjects()).length);
}, 60_000);
