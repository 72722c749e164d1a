/**
 * A snapshot's `time` on a clock stepped back, over SSE and NATS, on a real host's libSQL file and a real nats-server:
 * updates stamped two hours ahead of the clock straight into the store are what a clock set back while kubemeta was
 * down finds at the next start. A reset's `ADDED`s are stamped no earlier than the newest update their version
 * includes, which precedes them on the stream.
 */
import { afterEach, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { startTestHost, type TestHost } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { CLUSTER, client, natsSink, PREFIX } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { json, openSse } from "./sse-client.ts";
import { storeChangedUntil } from "./store-libsql-setup.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A host on a store whose 20 updates end two hours ahead of the clock, and that newest update's time. */
async function hostAheadOfClock(sinks: Record<string, unknown>[]): Promise<{ th: TestHost; newest: string }> {
  const dir = await storeChangedUntil(Date.now() + 120 * 60_000);
  const th = await startTestHost({ dir, cluster: CLUSTER, sinks });
  cleanups.push(() => th.destroy());
  const [newest] = await th.host.log.read({ stream: ALL, after: 19, limit: 1 });
  return { th, newest: newest?.time ?? "" };
}

test("SSE: a reset's ADDEDs on a clock behind the log are stamped with the newest update's time", async () => {
  const { th, newest } = await hostAheadOfClock([{ type: "sse" }]);
  const sse = await openSse(th.url, { stream: "shared" });
  cleanups.push(async () => sse.close());
  const events = await sse.takeUntil("SYNCED");
  const added = events.filter((event) => event.type === "ADDED").map((event) => json<Envelope>(event));
  expect(added.map((envelope) => [envelope.version, envelope.time])).toEqual([[20, newest]]);
});

test("NATS: a replay's reset on a clock behind the log is stamped with the newest update's time", async () => {
  const server = await startNatsServer();
  cleanups.push(() => server.destroy());
  const { newest } = await hostAheadOfClock([natsSink(server, { prefix: PREFIX })]);
  const nc = await client(server);
  cleanups.push(() => nc.close());
  const chunks = await replay(nc, `${PREFIX}.replay`, { stream: ALL });
  expect(chunks[0]?.reset).toBe("no-resume-point");
  const added = chunks.flatMap((chunk) => chunk.updates);
  expect(added.map((envelope) => [envelope.version, envelope.time])).toEqual([[20, newest]]);
});
