/**
 * The client library over NATS when the consumer's user may not subscribe to a stream's subject: the server refuses
 * the subscription (at the start, at a reconnect) or drops it (a reload of its configuration taking the permission
 * away), and the NATS client forgets it for good. The library says so through `onError` at each try, subscribes again
 * on its backoff, and, once the permission is granted (a reload, which keeps the connection), replays what it missed:
 * the cache ends equal to the store, and live updates flow again.
 */
import { afterEach, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import { rawPod, waitFor, type TestHost } from "../testing/index.ts";
import { matchesStore, type Recorder } from "./client-recorder.ts";
import { AUTH, startDeniedConsumer } from "./client-nats-denied.ts";
import { PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import type { TestNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SUBJECT = `${PREFIX}.all`;
// One user for the sink and the consumer: the sink publishes on the stream's subject, which a deny of SUB leaves.
const DENIED = { ...AUTH, subscribeDeny: [SUBJECT] };
const REFUSED = new RegExp(
  `^the NATS server refused the subscription to ${SUBJECT.replaceAll(".", "\\.")}: ` +
    'Permissions Violation for Subscription to ".+"; subscribing again in \\d+ ms$',
);

/** A nats-server (the consumer's subscription denied unless `granted`), a host whose sink uses it, and an agent. */
async function start(granted: boolean) {
  const started = await startDeniedConsumer(cleanups, granted ? AUTH : DENIED, {
    addPods: (th) => addPods(th, "before"),
  });
  await started.subscription.synced;
  const converged = () => matchesStore(started.th, started.subscription, [ALL], started.r.view);
  return { ...started, converged };
}

async function addPods(th: TestHost, name: string): Promise<void> {
  for (const n of [1, 2]) await th.changes.apply("pods", "ADDED", rawPod(`${name}-${n}`, { node: "n1" }));
  await th.changes.flush();
}

const refusals = (r: Recorder) => r.errors.filter((error) => REFUSED.test(error.message)).length;

/** The permission granted by a reload: what was published meanwhile is replayed, and live updates come again. */
async function granted(server: TestNatsServer, th: TestHost, converged: () => Promise<boolean>): Promise<void> {
  await addPods(th, "while-refused");
  await server.reload({ auth: AUTH });
  await waitFor(converged, 10_000, "what was missed, replayed once the subscription stands");
  await addPods(th, "after");
  await waitFor(converged, 10_000, "live updates after the grant");
}

test(
  "a stream subscription refused at the start is reported at each try, and resumes whole once a reload grants it",
  async () => {
    const { server, th, r, converged } = await start(false);
    await waitFor(() => refusals(r) >= 3, 10_000, "the refusal reported at each try");
    await granted(server, th, converged);
    expect(r.calls).toContain("ADDED while-refused-2");
    expect(r.calls).toContain("ADDED after-2");
  },
  SLOW_MS,
);

test(
  "a stream subscription dropped by a reload that takes the permission away is reported, made again once granted",
  async () => {
    const { server, th, r, converged } = await start(true);
    await addPods(th, "live");
    await waitFor(converged, 10_000, "the live updates");
    expect(refusals(r)).toBe(0);

    await server.reload({ auth: DENIED });
    await waitFor(() => refusals(r) >= 2, 10_000, "the drop reported, and the refusals of the tries after it");
    await granted(server, th, converged);
    expect(r.calls).toContain("ADDED while-refused-2");
  },
  SLOW_MS,
);
