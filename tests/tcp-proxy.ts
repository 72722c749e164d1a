/**
 * A TCP proxy in front of a test server, for one client's network path to it: `partition()` drops every byte both
 * ways (connections stay open and hang, new ones are accepted and hear nothing), as a network partition does to a
 * process whose peer it can no longer reach; `heal()` lets new connections through again and closes the ones the
 * partition hung (their requests were given up meanwhile); `reopen()` lets new connections through and leaves those
 * that a request hangs on hanging, as a load balancer's failover or a NAT that lost its entry does. `hold()` keeps
 * what the server sends, the connections open and the client's bytes going through, until `release()` hands it on:
 * what was on its way when the client did something next arrives after it.
 */
import type { Socket } from "bun";

/** One accepted connection: what it has sent before its upstream was open, and that upstream. */
interface Link {
  upstream?: Socket<Link>;
  /** Bytes for the upstream while it connects, and for either side while its socket's buffer is full. */
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  client: Socket<Link>;
  /** Opened or hung during a partition: never forwards again. */
  severed: boolean;
  /** Severed with bytes on their way: a request that hangs on it. */
  hung: boolean;
}

/** What the proxy holds back while held: per link, the server's bytes in the order they came. */
type Held = Map<Link, Uint8Array[]>;

export interface TcpProxy {
  port: number;
  /** Connections accepted so far, partitioned or not. */
  readonly accepted: number;
  /** Whether the path is cut. */
  readonly partitioned: boolean;
  /** Connections a request hangs on: bytes either way dropped by a partition. */
  readonly hung: number;
  partition(): void;
  heal(): void;
  /** Ends the partition for new connections; of the old ones, closes those idle and leaves those hung hanging. */
  reopen(): void;
  /** Keeps the server's bytes from the clients from now on (the clients' still go through). */
  hold(): void;
  /** Hands on what was held, in order, and forwards as before. */
  release(): void;
  stop(): void;
}

/** Writes what `queue` holds, then `chunk`, keeping what the socket's buffer does not take. */
function send(socket: Socket<Link> | undefined, queue: Uint8Array[], chunk?: Uint8Array): void {
  if (chunk) queue.push(chunk);
  while (socket && queue.length > 0) {
    const head = queue[0]!;
    const written = socket.write(head);
    if (written < head.byteLength) {
      queue[0] = head.subarray(Math.max(written, 0));
      return;
    }
    queue.shift();
  }
}

export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let partitioned = false;
  let held: Held | undefined;
  let accepted = 0;
  const links = new Set<Link>();
  const close = (link: Link) => {
    links.delete(link);
    link.client.end();
    link.upstream?.end();
  };
  const listener = Bun.listen<Link>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        accepted++;
        const link: Link = { client, toUpstream: [], toClient: [], severed: partitioned, hung: false };
        client.data = link;
        links.add(link);
        if (link.severed) return;
        void Bun.connect<Link>({
          ...target,
          data: link,
          socket: {
            open(upstream) {
              link.upstream = upstream;
              if (!link.severed) send(upstream, link.toUpstream);
            },
            data(_upstream, chunk) {
              if (link.severed) {
                link.hung = true;
                return;
              }
              // Copied: the socket reuses its buffer once this returns.
              if (held) held.set(link, [...(held.get(link) ?? []), chunk.slice()]);
              else send(link.client, link.toClient, chunk);
            },
            drain: (upstream) => {
              if (!link.severed) send(upstream, link.toUpstream);
            },
            close: () => close(link),
            error: () => close(link),
          },
        }).catch(() => close(link));
      },
      data(client, chunk) {
        if (client.data.severed) client.data.hung = true;
        else send(client.data.upstream, client.data.toUpstream, chunk);
      },
      drain: (client) => {
        if (!client.data.severed) send(client, client.data.toClient);
      },
      close: (client) => close(client.data),
      error: (client) => close(client.data),
    },
  });
  return {
    port: listener.port,
    get accepted() {
      return accepted;
    },
    get partitioned() {
      return partitioned;
    },
    get hung() {
      return [...links].filter((link) => link.hung).length;
    },
    partition() {
      partitioned = true;
      for (const link of links) link.severed = true;
    },
    heal() {
      partitioned = false;
      for (const link of links) if (link.severed) close(link);
    },
    reopen() {
      partitioned = false;
      for (const link of links) if (link.severed && !link.hung) close(link);
    },
    hold() {
      held ??= new Map();
    },
    release() {
      const released = held;
      held = undefined;
      for (const [link, chunks] of released ?? [])
        for (const chunk of chunks) if (!link.severed) send(link.client, link.toClient, chunk);
    },
    stop() {
      for (const link of links) close(link);
      listener.stop(true);
    },
  };
}
