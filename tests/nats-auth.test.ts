/**
 * Connection options against servers that demand them: token, user/password, nkey, TLS
 * with a CA and a client certificate (checked under Bun, whose node:tls the NATS client
 * uses to upgrade the connection after the server's INFO). Wrong credentials: the sink
 * keeps trying without taking the host down.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { connect, nkeyAuthenticator, nkeys, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, waitFor } from "../testing/index.ts";
import { testPki } from "../simulator/certs.ts";
import { PREFIX, startNatsHost, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type NatsServerOptions } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * Starts a server and a host whose sink uses `sink` options; resolves once an update reaches a client using
 * `clientOptions`.
 */
async function expectDelivery(
  serverOptions: NatsServerOptions,
  sink: Record<string, unknown>,
  clientOptions: Partial<NodeConnectionOptions>,
): Promise<void> {
  const server = await startNatsServer(serverOptions);
  cleanups.push(() => server.destroy());
  const nc = await connect({ servers: server.url, ...clientOptions });
  cleanups.push(() => nc.close());
  const seen: Envelope[] = [];
  nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
  await nc.flush();
  const th = await startNatsHost(server, { sink });
  cleanups.push(() => th.destroy());
  await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await th.changes.flush();
  await waitFor(() => seen.length === 1, 5_000, "the update");
  expect(seen[0]!.name).toBe("web-1");
}

test(
  "token",
  async () => {
    await expectDelivery({ auth: { token: "s3cret-token" } }, { token: "s3cret-token" }, { token: "s3cret-token" });
  },
  SLOW_MS,
);

test(
  "user and password",
  async () => {
    await expectDelivery(
      { auth: { user: "kubemeta", password: "pa:ss word" } },
      { user: "kubemeta", password: "pa:ss word" },
      { user: "kubemeta", pass: "pa:ss word" },
    );
  },
  SLOW_MS,
);

test(
  "nkey seed",
  async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    await expectDelivery(
      { auth: { nkey: user.getPublicKey() } },
      { nkeySeed: seed },
      { authenticator: nkeyAuthenticator(user.getSeed()) },
    );
  },
  SLOW_MS,
);

test(
  "TLS with a CA and a client certificate the server verifies",
  async () => {
    const pki = await testPki();
    const tls = { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile };
    await expectDelivery(
      {
        tls: {
          certFile: join(pki.dir, "server.crt"),
          keyFile: join(pki.dir, "server.key"),
          caFile: pki.caFile,
          verify: true,
        },
      },
      { tls },
      { tls },
    );
  },
  SLOW_MS,
);

test(
  "wrong credentials: the sink keeps trying with backoff and the host stays up and stops promptly",
  async () => {
    const server = await startNatsServer({ auth: { token: "right" } });
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server, { sink: { token: "wrong" } });
    cleanups.push(() => th.destroy());
    await waitFor(
      () => /kubemeta_nats_connect_failures_total\{sink="nats"\} ([3-9]|\d\d)/.test(th.host.metrics.render()),
      5_000,
      "repeated failures",
    );
    await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    await th.changes.flush();
    expect((await th.host.readiness()).ready).toBe(true);
    const started = Date.now();
    await th.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
  },
  SLOW_MS,
);
