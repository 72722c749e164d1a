/**
 * The NATS client's `connect`, with a transport that closes its socket when the handshake is given up on, for every
 * dial of the connection, its reconnects included.
 *
 * In @nats-io/transport-node 3.4.0, nats-core's `ProtocolHandler.dial` races the handshake against the `timeout`
 * option and, when the timeout wins, calls `transport.close(err)`: `NodeTransport._closed` (lib/node_transport.js)
 * returns at once for a transport that has not connected, and its socket stays open for the life of the process,
 * still waiting for the server's INFO. A server (or a load balancer) that accepts TCP and answers late or never
 * would leave one open socket per attempt the sink retries, and one per connection closed while it reconnects. A TCP
 * connect that gets no SYN-ACK (packets dropped) is not even the transport's socket yet: it would stay open, retrying
 * its SYN, until the kernel gives up, about two minutes after the attempt was given up on.
 * The same transport reads the TLS files (`tls.caFile`, `certFile`, `keyFile`) through sdk/credential-file.ts.
 */
import {
  type ConnectionOptions,
  NatsConnectionImpl,
  type NatsConnection,
  type NodeConnectionOptions,
  ProtocolHandler,
  setTransportFactory,
} from "@nats-io/transport-node";
import { NodeTransport, nodeResolveHost } from "@nats-io/transport-node/lib/node_transport.js";
import { createConnection, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { readCredentialFile } from "../../../sdk/credential-file.ts";

type HostPort = { hostname: string; port: number };

const TLS_FILE_KEYS = ["caFile", "certFile", "keyFile"] as const;

class ClosingTransport extends NodeTransport {
  /** The socket of a TCP connect under way: NodeTransport has none to close until it connects. */
  private connecting?: Socket;

  override close(err?: Error): Promise<void> {
    // Closed before it connected: the handshake was given up on, and nobody else will ever close its socket.
    if (!this.connected) this.discard();
    return super.close(err);
  }

  override discard(): void {
    // A connect whose SYN gets no answer (packets dropped) holds its socket until the kernel gives up, minutes later.
    this.connecting?.destroy();
    super.discard();
  }

  /** As NodeTransport's, but the socket is kept while it connects, for a close meanwhile to destroy. */
  override dial(hp: HostPort): Promise<Socket> {
    const { promise, resolve, reject } = Promise.withResolvers<Socket>();
    let dialError: Error | undefined;
    const socket = createConnection(hp.port, hp.hostname, () => {
      this.connecting = undefined;
      socket.removeAllListeners();
      resolve(socket);
    });
    socket.on("error", (error) => {
      dialError = error;
    });
    socket.on("close", () => {
      this.connecting = undefined;
      socket.removeAllListeners();
      reject(dialError);
    });
    socket.setNoDelay(true);
    this.connecting = socket;
    return promise;
  }

  /** NodeTransport's opens TCP and TLS in one call, its socket out of reach while it connects: TLS goes over dial's. */
  override async tlsFirst(hp: HostPort): Promise<TLSSocket> {
    this.socket = await this.dial(hp);
    return super.tlsFirst(hp);
  }

  /**
   * The TLS files, read at each connection and reconnection (a renewed certificate is taken): as credential files,
   * where transport-node would read a FIFO with Bun's file pool, for ever.
   */
  override loadFile(fn: string): Promise<Buffer> {
    const tls = this.options.tls;
    const key = TLS_FILE_KEYS.find((name) => tls?.[name] === fn);
    return readCredentialFile(`tls.${key ?? "file"}`, fn);
  }
}

const CLOSING_TRANSPORT = { factory: () => new ClosingTransport(), dnsResolveFn: nodeResolveHost };

/**
 * nats-core makes each dial's transport with the factory of the whole process (lib/transport.js), which the package's
 * own `connect` replaces with its stock transport at each call, wherever it is made: a test's, a user's code through
 * `kubemeta/testing`, a plugin's. Set again at each dial, ours is the one this connection's reconnects use.
 */
class ClosingTransportHandler extends ProtocolHandler {
  override dial(server: Parameters<ProtocolHandler["dial"]>[0]): Promise<void> {
    setTransportFactory(CLOSING_TRANSPORT);
    // Its transport is made before its first await (in `prepare`): no other connect can come in between.
    return super.dial(server);
  }
}

/**
 * As nats-core's `NatsConnectionImpl.connect`, with ClosingTransportHandler in place of its handler. The websocket
 * URLs that transport-node's `connect` refuses never get here: kubemeta takes `nats://` and `tls://` only
 * (NATS_SERVER_RULE).
 */
export async function connect(options: NodeConnectionOptions): Promise<NatsConnection> {
  // Read when the options are parsed, below: whether server names are resolved, and how.
  setTransportFactory(CLOSING_TRANSPORT);
  // Node's TLS options are a superset of what nats-core types; the transport reads them as they are. The constructor
  // is private to nats-core's types only, so that its `connect` is the way in: this is that way, with our handler.
  const nc: NatsConnectionImpl = Reflect.construct(NatsConnectionImpl, [options as ConnectionOptions]);
  const handler = new ClosingTransportHandler(nc.options, nc);
  await handler.dialLoop();
  nc.protocol = handler;
  return nc;
}
