/**
 * The NATS client's `connect`, with a transport that closes its socket when the handshake is given up on.
 *
 * In @nats-io/transport-node 3.4.0, nats-core's `ProtocolHandler.dial` races the handshake against the `timeout`
 * option and, when the timeout wins, calls `transport.close(err)`: `NodeTransport._closed` (lib/node_transport.js)
 * returns at once for a transport that has not connected, and its socket stays open for the life of the process,
 * still waiting for the server's INFO. A server (or a load balancer) that accepts TCP and answers late or never
 * would leave one open socket per attempt the sink retries, and one per connection closed while it reconnects.
 */
import {
  type ConnectionOptions,
  NatsConnectionImpl,
  type NatsConnection,
  type NodeConnectionOptions,
  setTransportFactory,
} from "@nats-io/transport-node";
import { NodeTransport, nodeResolveHost } from "@nats-io/transport-node/lib/node_transport.js";

class ClosingTransport extends NodeTransport {
  override close(err?: Error): Promise<void> {
    // Closed before it connected: the handshake was given up on, and nobody else will ever close its socket.
    if (!this.connected) this.discard();
    return super.close(err);
  }
}

/**
 * As transport-node's `connect` (lib/connect.js), which installs its own transport factory, for every connection
 * of the process, at each call: only this one is called in kubemeta, so the factory stays ours for the reconnects.
 * The websocket URLs that one refuses never get here: kubemeta takes `nats://` and `tls://` only (NATS_SERVER_RULE).
 */
export function connect(options: NodeConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new ClosingTransport(), dnsResolveFn: nodeResolveHost });
  // Node's TLS options are a superset of what nats-core types; the transport reads them as they are.
  return NatsConnectionImpl.connect(options as ConnectionOptions);
}
