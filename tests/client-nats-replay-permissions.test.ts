/**
 * The client library over NATS when the consumer's user may not publish to `<prefix>.replay` or subscribe to its
 * reply inboxes. nats-server refuses each such request at once (a publish it refuses is told on the connection's
 * statuses only, matched to no subscription): the library says so through `onError` at each try, naming the
 * permission, long before a replay's silence would, keeps asking on its backoff, and syncs once a reload grants it.
 */
import { afterEach, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import { rawPod, waitFor } from "../testing/index.ts";
import { matchesStore, type Recorder } from "./client-recorder.ts";
import { AUTH, startDeniedConsumer } from "./client-nats-denied.ts";
import { PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import type { NatsServerOptions } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const REPLAY = `${PREFIX}.replay`;
/** Far beyond the waits below: a refusal told only by a replay's silence would not be told in time. */
const REPLAY_TIMEOUT_MS = 60_000;
const escaped = (text: string) => text.replaceAll(".", "\\.");

/**
 * A nats-server denying the consumer `denied` (the sink neither publishes to the replay subject nor takes inboxes), a
 * host whose sink uses it with one pod, and a subscription.
 */
async function start(denied: NonNullable<NatsServerOptions["auth"]>) {
  const started = await startDeniedConsumer(cleanups, denied, {
    replayTimeoutMs: REPLAY_TIMEOUT_MS,
    async addPods(th) {
      await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
      await th.changes.flush();
    },
  });
  let synced = false;
  void started.subscription.synced.then(() => (synced = true));
  return { ...started, isSynced: () => synced };
}

const count = (r: Recorder, pattern: RegExp) => r.errors.filter((error) => pattern.test(error.message)).length;

/**
 * Started with `denied`: `refused` reported at each try and nothing else, no sync; once a reload grants `granted`,
 * the first sync, equal to the store.
 */
async function refusedUntilGranted(denied: NonNullable<NatsServerOptions["auth"]>, refused: RegExp, granted: string) {
  const { server, th, r, subscription, isSynced } = await start(denied);
  await waitFor(() => count(r, refused) >= 3, 10_000, "the refusal reported at each try");
  expect(isSynced()).toBe(false);
  expect(r.errors.filter((error) => !refused.test(error.message))).toEqual([]);

  await server.reload({ auth: AUTH });
  await waitFor(isSynced, 10_000, `the first sync once ${granted} is granted`);
  expect(await matchesStore(th, subscription, [ALL], r.view)).toBe(true);
}

test(
  "a replay the user may not publish is reported at once at each try, naming the permission; synced once granted",
  async () => {
    const refused = new RegExp(
      `^the NATS server refused publishing to ${escaped(REPLAY)} \\(permissions\\): ` +
        `Permissions Violation for Publish to "${escaped(REPLAY)}"; asking again$`,
    );
    await refusedUntilGranted({ ...AUTH, publishDeny: [REPLAY] }, refused, "publishing");
  },
  SLOW_MS,
);

test(
  "a replay whose reply inbox the user may not subscribe is reported at once, naming it; synced once granted",
  async () => {
    const refused = new RegExp(
      "^the NATS server refused subscribing to the replay's inbox under _INBOX \\(permissions\\): " +
        'Permissions Violation for Subscription to "_INBOX\\.\\w+"; asking again$',
    );
    await refusedUntilGranted({ ...AUTH, subscribeDeny: ["_INBOX.>"] }, refused, "the inboxes");
  },
  SLOW_MS,
);
