/**
 * Publishes the NATS server refuses (kubemeta's NATS user may not publish on a subject): each is lost, not retried,
 * and the sink's cursor moves on. Counted, so that an alert sees what the subscribers of that subject miss; and
 * logged naming the user to grant it to, whatever the sink authenticates with.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { nkeys } from "@nats-io/transport-node";
import { createLogger } from "../host/logger.ts";
import { connectionOptions, natsSinkSchema } from "../plugins/sinks/nats/options.ts";
import { v } from "../sdk/index.ts";
import { sinkCaughtUp, waitFor } from "../testing/index.ts";
import { client, nodeNames, PREFIX, rawNode, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { type NatsServerOptions, startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const AUTH = { user: "kubemeta", password: "pa55word-0123" };
const ALL = `${PREFIX}.all`;

test(
  "each message the server refuses is counted in kubemeta_nats_publish_refusals_total, from 0",
  async () => {
    const server = await startNatsServer({ auth: { ...AUTH, publishDeny: [ALL] } });
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server, { sink: AUTH });
    cleanups.push(() => th.destroy());
    const refusals = () =>
      Number(/kubemeta_nats_publish_refusals_total\{sink="nats"\} (\d+)\n/.exec(th.host.metrics.render())?.[1]);
    expect(refusals()).toBe(0);
    const nc = await client(server, { user: AUTH.user, pass: AUTH.password });
    cleanups.push(() => nc.close());
    const delivered: string[] = [];
    nc.subscribe(`${PREFIX}.node.>`, { callback: (_, msg) => void delivered.push(msg.subject) });
    await nc.flush();

    // Each update goes to `all` (refused) and to its node's subject (delivered, then flushed: the refusal before it).
    const nodes = nodeNames(3);
    for (const node of nodes) await th.changes.apply("nodes", "ADDED", rawNode(node));
    await th.changes.flush();
    await waitFor(() => delivered.length === nodes.length, 10_000, "every update on its node's subject");
    await sinkCaughtUp(th, "nats");
    await waitFor(() => refusals() === nodes.length, 10_000, "one refusal per update on all");
    expect(refusals()).toBe(nodes.length);
  },
  SLOW_MS,
);

/** A `.creds` file as `nsc` writes one, its JWT unsigned: a server without an operator checks the nkey's alone. */
function credsFile(seed: string, claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const jwt = `${part({ typ: "JWT", alg: "ed25519-nkey" })}.${part(claims)}.c2ln`;
  return [
    "-----BEGIN NATS USER JWT-----",
    jwt,
    "------END NATS USER JWT------",
    "",
    "-----BEGIN USER NKEY SEED-----",
    seed,
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}

/**
 * The `user` of the lines that say the server refused a publish on `all` and the replay subscription, with a sink
 * authenticating as `sink` says to a server that knows it as `auth` says.
 */
async function refusedUsers(
  auth: NonNullable<NatsServerOptions["auth"]>,
  sink: (dir: string) => Promise<Record<string, unknown>>,
): Promise<unknown[]> {
  const server = await startNatsServer({ auth: { ...auth, publishDeny: [ALL], subscribeDeny: [`${PREFIX}.replay`] } });
  cleanups.push(() => server.destroy());
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const th = await startNatsHost(server, { sink: await sink(server.dir), logger });
  cleanups.push(() => th.destroy());
  await th.changes.apply("nodes", "ADDED", rawNode(nodeNames(1)[0]!));
  await th.changes.flush();
  const said = (start: string) => lines.find((line) => String(line.msg).startsWith(start));
  const publish = "the NATS server refused a publish";
  const subscription = "the NATS server refused the replay subscription";
  await waitFor(() => said(publish) && said(subscription), 10_000, "both refusals logged");
  return [said(publish)!.user, said(subscription)!.user];
}

test(
  "a refusal names the user: an nkey's public key (nkeySeed, nkeySeedFile), a creds file's JWT's name and key",
  async () => {
    const user = nkeys.createUser();
    const key = user.getPublicKey();
    const seed = new TextDecoder().decode(user.getSeed());
    expect(await refusedUsers({ nkey: key }, async () => ({ nkeySeed: seed }))).toEqual([key, key]);
    const seedFile = async (dir: string) => {
      await writeFile(join(dir, "user.nk"), `${seed}\n`);
      return { nkeySeedFile: join(dir, "user.nk") };
    };
    expect(await refusedUsers({ nkey: key }, seedFile)).toEqual([key, key]);
    const creds = async (dir: string) => {
      await writeFile(join(dir, "user.creds"), credsFile(seed, { sub: key, name: "kubemeta-prod" }));
      return { credsFile: join(dir, "user.creds") };
    };
    const named = `kubemeta-prod (${key})`;
    expect(await refusedUsers({ nkey: key }, creds)).toEqual([named, named]);
  },
  SLOW_MS,
);

test("the user a refusal names of a token login, the sink's or its URL's, is 'a token', never the token", async () => {
  const userOf = async (sink: Record<string, unknown>) =>
    (await connectionOptions(v.parse(natsSinkSchema, sink), "kubemeta", () => 0)).user;
  expect(await userOf({ servers: "nats://127.0.0.1:4222", token: "s3cret-token" })).toBe("a token");
  expect(await userOf({ servers: "nats://s3cret-token@127.0.0.1:4222" })).toBe("a token");
  expect(await userOf({ servers: "nats://kubemeta:pa55@127.0.0.1:4222" })).toBe("kubemeta");
  expect(await userOf({ servers: "nats://127.0.0.1:4222" })).toBeUndefined();
});
