/**
 * Connection options against servers that demand them: token, user/password, nkey, TLS
 * with a CA and a client certificate (checked under Bun, whose node:tls the NATS client
 * uses to upgrade the connection after the server's INFO), TLS before the INFO. Wrong credentials: the sink
 * keeps trying without taking the host down.
 */
import { afterEach, expect, test } from "bun:test";
import { type AddressInfo, createConnection } from "node:net";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { connect, nkeyAuthenticator, nkeys, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, waitFor } from "../testing/index.ts";
import { type TestPki, testPki } from "../simulator/certs.ts";
import { PREFIX, startNatsHost, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type NatsServerOptions } from "./nats-server.ts";
import { replay } from "./nats-consumer.ts";
import { createLogger } from "../host/logger.ts";

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
  sink: Record<string, unknown> | ((serverUrl: string) => Record<string, unknown> | Promise<Record<string, unknown>>),
  clientOptions: Partial<NodeConnectionOptions>,
): Promise<void> {
  const server = await startNatsServer(serverOptions);
  cleanups.push(() => server.destroy());
  const nc = await connect({ servers: server.url, ...clientOptions });
  cleanups.push(() => nc.close());
  const seen: Envelope[] = [];
  nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
  await nc.flush();
  const th = await startNatsHost(server, { sink: typeof sink === "function" ? await sink(server.url) : sink });
  cleanups.push(() => th.destroy());
  await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await th.changes.flush();
  await waitFor(() => seen.length === 1, 5_000, "the update");
  expect(seen[0]!.name).toBe("web-1");
}

/**
 * nats-server here (2.9) has no `handshake_first`: a TLS front to a real one, which opens TLS before anything is said
 * and adds to the server's INFO that TLS is required, as a `handshake_first` server's INFO says.
 */
async function tlsFirstFront(upstreamPort: number, pki: TestPki): Promise<{ port: number; close(): Promise<void> }> {
  const front = createTlsServer({ cert: pki.serverCertPem, key: pki.serverKeyPem }, (client) => {
    const upstream = createConnection(upstreamPort, "127.0.0.1");
    let info = true;
    upstream.on("data", (chunk: Buffer) => {
      client.write(info ? chunk.toString().replace("INFO {", 'INFO {"tls_required":true,') : chunk);
      info = false;
    });
    client.pipe(upstream);
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      socket.on("error", () => {});
      socket.on("close", () => other.destroy());
    }
  });
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  return {
    port: (front.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => front.close(() => resolve())),
  };
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
  "a user the server refuses some subjects: what the server says of each refused message is logged once a minute",
  async () => {
    const auth = { user: "kubemeta", password: "pa55word-0123", publishDeny: [`${PREFIX}.node.>`] };
    const server = await startNatsServer({ auth });
    cleanups.push(() => server.destroy());
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const th = await startNatsHost(server, { sink: { user: auth.user, password: auth.password }, logger });
    cleanups.push(() => th.destroy());
    const nc = await connect({ servers: server.url, user: auth.user, pass: auth.password });
    cleanups.push(() => nc.close());
    const seen: Envelope[] = [];
    nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
    await nc.flush();
    for (let i = 0; i < 20; i++) await th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
    await th.changes.flush();
    // Each update's node message is refused; its message on `all` goes through.
    await waitFor(() => seen.length === 20, 5_000, "every update on all");
    const refused = () => lines.filter((line) => String(line.msg).startsWith("the NATS server refused a publish"));
    await waitFor(() => refused().length > 0, 5_000, "the refusal logged");
    await nc.flush();
    expect(refused()).toHaveLength(1);
  },
  SLOW_MS,
);

/** `url` with `userinfo` before its host, as a user writes credentials into a server URL. */
const withUserinfo = (url: string, userinfo: string) => url.replace("nats://", `nats://${userinfo}@`);

test(
  "credentials in the server URL are used when the sink sets none: user and password (percent-encoded), a token",
  async () => {
    const password = "pa:ss w@rd/1";
    await expectDelivery(
      { auth: { user: "kubemeta", password } },
      (url) => ({ servers: [withUserinfo(url, `kubemeta:${encodeURIComponent(password)}`)] }),
      { user: "kubemeta", pass: password },
    );
    await expectDelivery({ auth: { token: "url-token" } }, (url) => ({ servers: [withUserinfo(url, "url-token")] }), {
      token: "url-token",
    });
  },
  SLOW_MS,
);

test(
  "the sink's own credentials win over a URL's, with a warning that names them",
  async () => {
    const lines: string[] = [];
    const server = await startNatsServer({ auth: { token: "own-token" } });
    cleanups.push(() => server.destroy());
    const th = await startNatsHost(server, {
      sink: { token: "own-token", servers: [withUserinfo(server.url, "url-token")] },
      logger: createLogger({ level: "info", write: (line) => void lines.push(line) }),
    });
    cleanups.push(() => th.destroy());
    await waitFor(() => lines.some((line) => line.includes('"connected to NATS"')), 5_000, "the connection");
    const warning = lines.find((line) => line.includes("credentials in a server URL are not used"));
    expect(warning).toContain("the sink's token is");
    expect(warning).toContain("nats://***@127.0.0.1");
    expect(lines.join("\n")).not.toContain("url-token");
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
  "TLS before the server's INFO (handshakeFirst), the server's certificate checked against caFile",
  async () => {
    const pki = await testPki();
    await expectDelivery(
      {},
      async (serverUrl) => {
        const front = await tlsFirstFront(Number(new URL(serverUrl).port), pki);
        cleanups.push(() => front.close());
        return { servers: [`nats://127.0.0.1:${front.port}`], tls: { handshakeFirst: true, caFile: pki.caFile } };
      },
      {},
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

test("a node agent allowed its node's subjects alone still replays any stream: `all` brings all pods", async () => {
  const kubemeta = { user: "kubemeta", password: "kubemeta-password" };
  const agent = { user: "agent-n1", password: "agent-password" };
  const server = await startNatsServer({
    auth: {
      users: [
        { ...kubemeta, publishAllow: [`${PREFIX}.>`, "_INBOX.>"], subscribeAllow: [`${PREFIX}.replay`] },
        {
          ...agent,
          publishAllow: [`${PREFIX}.replay`],
          subscribeAllow: [`${PREFIX}.node.n1`, `${PREFIX}.shared`, "_INBOX.>"],
        },
      ],
    },
  });
  cleanups.push(() => server.destroy());
  const th = await startNatsHost(server, { sink: kubemeta });
  cleanups.push(() => th.destroy());
  await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await th.changes.apply("pods", "ADDED", rawPod("db-1", { node: "n2" }));
  await th.changes.flush();
  const errors: Error[] = [];
  const nc = await connect({ servers: server.url, user: agent.user, pass: agent.password });
  cleanups.push(() => nc.close());
  (async () => {
    for await (const status of nc.status()) if (status.type === "error") errors.push(status.error);
  })();
  // The server keeps it from n2's subject...
  nc.subscribe(`${PREFIX}.node.n2`);
  await waitFor(() => errors.some((e) => /Permissions Violation for Subscription/.test(e.message)), 5_000, "refusal");
  // ...but the replay request names its stream, and nothing tells kubemeta who asks: README's Permissions says so.
  const chunks = await replay(nc, `${PREFIX}.replay`, { stream: "all" });
  const pods = chunks.flatMap((chunk) => chunk.updates).filter((update) => update.kind === "Pod");
  expect(pods.map((pod) => [pod.name, pod.node]).sort()).toEqual([
    ["db-1", "n2"],
    ["web-1", "n1"],
  ]);
});
