/**
 * What the tests of a NATS consumer denied a permission start: a nats-server with the given users' rights, a host whose
 * NATS sink uses it (the sink's user is the consumer's: one user), the pods the test adds before subscribing, and the
 * client library's subscription to `all` with a short retry backoff and no recheck (only what the library does on its
 * own may bring what was missed).
 */
import { subscribeNats } from "../client/index.ts";
import { ALL } from "../protocol/streams.ts";
import type { TestHost } from "../testing/index.ts";
import { recorder } from "./client-recorder.ts";
import { client, CLUSTER, startNatsHost } from "./nats-fixtures.ts";
import { type NatsServerOptions, startNatsServer } from "./nats-server.ts";

/** The one user of these tests: the sink publishes as it, the consumer subscribes as it. */
export const AUTH = { user: "kubemeta", password: "pa55word-0123" };

export async function startDeniedConsumer(
  cleanups: (() => Promise<unknown>)[],
  auth: NonNullable<NatsServerOptions["auth"]>,
  options: { addPods(th: TestHost): Promise<void>; replayTimeoutMs?: number },
) {
  const server = await startNatsServer({ auth });
  cleanups.push(() => server.destroy());
  const th = await startNatsHost(server, { sink: AUTH });
  cleanups.push(() => th.destroy());
  await options.addPods(th);
  const nc = await client(server, { user: AUTH.user, pass: AUTH.password });
  cleanups.push(() => nc.close());
  const r = recorder();
  const subscription = subscribeNats({
    nc,
    cluster: CLUSTER,
    streams: [ALL],
    ...(options.replayTimeoutMs === undefined ? {} : { replayTimeoutMs: options.replayTimeoutMs }),
    retry: { initialMs: 20, maxMs: 200 },
    recheckMs: 0,
    ...r.handlers,
  });
  cleanups.push(() => subscription.stop());
  return { server, th, r, subscription };
}
