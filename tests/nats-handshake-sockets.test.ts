/**
 * Handshakes given up on leave no socket open. The NATS client (transport-node 3.4.0) closes a transport whose
 * handshake timed out without destroying its socket (plugins/sinks/nats/connect.ts says where): against a server
 * that accepts TCP and sends its INFO late or never, every attempt the sink retries would leave one open socket.
 * Counted here as the process's own sockets whose peer is the test's port.
 */
import { afterEach, expect, test } from "bun:test";
import { readdir, readFile, readlink } from "node:fs/promises";
import { connect as stockConnect } from "@nats-io/transport-node";
import { connect } from "../plugins/sinks/nats/connect.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { CLUSTER, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";
import { startSynBlackhole } from "./syn-blackhole.ts";
import { startTcpProxy } from "./tcp-proxy.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TIMEOUT_MS = 100;
const ATTEMPTS = 6;

/** The TCP state of a connect waiting for its SYN-ACK, as /proc/net/tcp writes it. */
const SYN_SENT = "02";

/**
 * This process's TCP sockets connected to `port` on the other end (from its fds and the kernel's socket tables), or
 * only those in `state`.
 */
async function socketsTo(port: number, state?: string): Promise<number> {
  const links = await Promise.all(
    (await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")),
  );
  const inodes = new Set(links.flatMap((link) => /^socket:\[(\d+)\]$/.exec(link)?.[1] ?? []));
  const remote = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let count = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const rows = (await readFile(table, "utf8").catch(() => "")).split("\n").slice(1);
    for (const row of rows) {
      const fields = row.trim().split(/\s+/);
      if (!fields[2]?.endsWith(remote) || !inodes.has(fields[9] ?? "")) continue;
      if (state === undefined || fields[3] === state) count++;
    }
  }
  return count;
}

/** A peer that accepts every connection and says nothing, or only an INFO `infoAfterMs` after accepting it. */
function startMuteServer(infoAfterMs?: number): { port: number; stop(): void } {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const info = 'INFO {"server_id":"mute","version":"2.10.0","proto":1,"max_payload":1048576}\r\n';
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        if (infoAfterMs !== undefined) timers.add(setTimeout(() => socket.write(info), infoAfterMs));
      },
      data() {},
    },
  });
  return {
    port: listener.port,
    stop() {
      for (const timer of timers) clearTimeout(timer);
      listener.stop(true);
    },
  };
}

/** A host whose NATS sink dials 127.0.0.1:`port` with the short timeouts these tests count on (and `sink`). */
async function hostWithSink(port: number, sink: Record<string, unknown> = {}) {
  const th = await startTestHost({
    cluster: CLUSTER,
    sinks: [
      {
        type: "nats",
        servers: [`nats://127.0.0.1:${port}`],
        connectTimeout: `${TIMEOUT_MS}ms`,
        reconnect: { initial: "20ms", max: "50ms" },
        ...sink,
      },
    ],
  });
  cleanups.push(() => th.destroy());
  return th;
}

/** The sockets to `peer` (in `state` only, if given) after the sink's ATTEMPTS first attempts failed. */
async function sinkAttemptsLeave(
  peer: { port: number },
  state?: string,
  sink: Record<string, unknown> = {},
): Promise<number> {
  const th = await hostWithSink(peer.port, sink);
  const failures = /kubemeta_nats_connect_failures_total\{sink="nats"\} (\d+)/;
  await waitFor(
    () => Number(failures.exec(th.host.metrics.render())?.[1] ?? 0) >= ATTEMPTS,
    10_000,
    `${ATTEMPTS} failed connection attempts`,
  );
  return socketsTo(peer.port, state);
}

test(
  "the sink's attempts against a server that accepts and never sends INFO leave at most the one in flight open",
  async () => {
    const peer = startMuteServer();
    cleanups.push(() => peer.stop());
    expect(await sinkAttemptsLeave(peer)).toBeLessThanOrEqual(1);
  },
  SLOW_MS,
);

test(
  "the sink's attempts against a server whose INFO comes after the handshake's deadline leave none behind",
  async () => {
    // Sent after the client gave up: a socket left open reads it, and then waits for ever for more.
    const peer = startMuteServer(2 * TIMEOUT_MS);
    cleanups.push(() => peer.stop());
    expect(await sinkAttemptsLeave(peer)).toBeLessThanOrEqual(1);
  },
  SLOW_MS,
);

const FIRST_PACKETS = { "NATS's INFO": {}, "TLS's handshake": { tls: { handshakeFirst: true } } };
for (const [first, sink] of Object.entries(FIRST_PACKETS)) {
  test(
    `the sink's attempts whose SYN gets no answer leave at most the one in flight waiting (${first} first)`,
    async () => {
      const peer = await startSynBlackhole();
      cleanups.push(() => peer.stop());
      // Seen, or the kernel answered the SYN and the attempts below fail on something else.
      const [, left] = await Promise.all([
        waitFor(async () => (await socketsTo(peer.port, SYN_SENT)) > 0, 10_000, "a SYN unanswered"),
        sinkAttemptsLeave(peer, SYN_SENT, sink),
      ]);
      expect(left).toBeLessThanOrEqual(1);
    },
    SLOW_MS,
  );
}

/** A nats-server behind a TCP proxy that can cut the path (partition) as a network would. */
async function startProxiedServer() {
  const server = await startNatsServer();
  cleanups.push(() => server.destroy());
  const proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.port });
  cleanups.push(() => proxy.stop());
  return { server, proxy };
}

test(
  "a connection closed while its reconnects time out (a partitioned path) leaves no socket open",
  async () => {
    const { proxy } = await startProxiedServer();
    const nc = await connect({
      servers: `nats://127.0.0.1:${proxy.port}`,
      timeout: TIMEOUT_MS,
      reconnectTimeWait: 20,
      maxReconnectAttempts: -1,
    });
    cleanups.push(() => nc.close());
    let attempts = 0;
    void (async () => {
      for await (const status of nc.status()) if (status.type === "reconnecting") attempts++;
    })();
    proxy.partition();
    await nc.reconnect();
    await waitFor(() => attempts >= ATTEMPTS, 10_000, `${ATTEMPTS} reconnect attempts`);
    await nc.close();
    await waitFor(async () => (await socketsTo(proxy.port)) === 0, 2_000, "no socket left to the proxy");
  },
  SLOW_MS,
);

test(
  "a stock connect elsewhere in the process leaves the sink's reconnects on the transport that closes its sockets",
  async () => {
    const { server, proxy } = await startProxiedServer();
    const th = await hostWithSink(proxy.port);
    const connected = 'kubemeta_nats_connected{sink="nats"} 1';
    await waitFor(() => th.host.metrics.render().includes(connected), 10_000, "the sink connected");
    // The package's own connect installs its transport for every connection of the process, a test's as a plugin's.
    const stock = await stockConnect({ servers: server.url });
    cleanups.push(() => stock.close());

    // The sink's connection goes with the server; its reconnects through the cut path time out, one after the other.
    proxy.partition();
    await server.restart();
    const before = proxy.accepted;
    await waitFor(() => proxy.accepted >= before + ATTEMPTS, 10_000, `${ATTEMPTS} reconnect attempts`);
    await th.stop();
    await waitFor(async () => (await socketsTo(proxy.port)) === 0, 2_000, "no socket left to the proxy");
  },
  SLOW_MS,
);
