/**
 * What the client library over NATS says when the replay goes wrong, against a real nats-server and stand-ins for
 * kubemeta's responder that misbehave on purpose: each error names the subject and why, since `tail` (and any
 * `onError` that logs `error.message`) shows the message alone, not its `cause`.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { subscribeNats, type Subscription } from "../client/index.ts";
import { SHARED } from "../protocol/streams.ts";
import { waitFor } from "../testing/index.ts";
import { recorder, type Recorder } from "./client-recorder.ts";
import { client, CLUSTER, PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const REPLAY = `${PREFIX}.replay`;

let server: TestNatsServer;
const connections: NatsConnection[] = [];
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  server = await startNatsServer();
}, SLOW_MS);
afterEach(async () => {
  for (const s of subscriptions.splice(0)) await s.stop();
  for (const nc of connections.splice(0)) await nc.close();
});
afterAll(async () => {
  await server?.destroy();
});

async function connection(): Promise<NatsConnection> {
  const nc = await client(server);
  connections.push(nc);
  return nc;
}

/** A subscriber to `shared`, whose errors are recorded; its replays are given up after `replayTimeoutMs`. */
async function subscriber(): Promise<Recorder> {
  const r = recorder();
  subscriptions.push(
    subscribeNats({
      nc: await connection(),
      cluster: CLUSTER,
      streams: [SHARED],
      replayTimeoutMs: 300,
      retry: { initialMs: 50, maxMs: 200 },
      ...r.handlers,
    }),
  );
  return r;
}

const messages = (r: Recorder) => r.errors.map((error) => error.message);

test("a replay nobody answers names the subject and each reason kubemeta may have (replay disabled too)", async () => {
  const r = await subscriber();
  await waitFor(() => r.errors.length > 0, 5_000, "the first error");
  expect(messages(r)[0]).toBe(
    `no responders on ${REPLAY}: no kubemeta answers it (not connected to NATS yet, publishing under another ` +
      "prefix, or its NATS sink's replay.enabled false)",
  );
});

test("a responder that says nothing: the silence names the subject", async () => {
  const responder = await connection();
  responder.subscribe(REPLAY, { callback: () => {} });
  await responder.flush();
  const r = await subscriber();
  await waitFor(() => r.errors.length > 0, 5_000, "the first error");
  expect(messages(r)[0]).toBe(`no replay chunk on ${REPLAY} for 300 ms; asking again`);
});

test("an unreadable replay chunk or stream message says why, not only in its cause", async () => {
  const responder = await connection();
  responder.subscribe(REPLAY, { callback: (_error, msg) => void msg.respond("not json") });
  await responder.flush();
  const r = await subscriber();
  await waitFor(() => r.errors.length > 0, 5_000, "the first error");
  expect(messages(r)[0]).toStartWith(`unreadable replay chunk on ${REPLAY}: SyntaxError: `);

  responder.publish(`${PREFIX}.${SHARED}`, "{broken");
  await waitFor(
    () => messages(r).some((message) => message.startsWith("unreadable message")),
    5_000,
    "the stream message's error",
  );
  expect(messages(r).find((message) => message.startsWith("unreadable message"))).toStartWith(
    `unreadable message on ${PREFIX}.${SHARED}: SyntaxError: `,
  );
});

test("a process that did not run for over replayTimeoutMs mid-reply (stopped): its reply is taken", async () => {
  const responder = await connection();
  responder.subscribe(REPLAY, {
    callback(_error, msg) {
      const chunk = (seq: number, last: boolean) =>
        JSON.stringify({
          epoch: "e1",
          seq,
          updates: [],
          reset: seq === 0 ? "no-resume-point" : undefined,
          ...(last ? { last: true, through: 5 } : {}),
        });
      msg.respond(chunk(0, false));
      // The whole process held (as a SIGSTOP holds it) between two chunks: the silence timer comes due meanwhile.
      Bun.sleepSync(700);
      msg.respond(chunk(1, true));
    },
  });
  await responder.flush();
  const r = await subscriber();
  await waitFor(() => r.synced.length > 0, 5_000, "the stream synced");
  expect(messages(r)).toEqual([]);
});
