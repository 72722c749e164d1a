/**
 * A kubeconfig cluster's `proxy-url` (an HTTP proxy that opens CONNECT tunnels, as a corporate proxy or a bastion
 * does): the source's requests reach the TLS test API server through it with the kubeconfig's CA, token or client
 * certificate, the proxy URL's credentials go to the proxy alone, and a proxy that refuses the tunnel is said as such.
 * Without one, `HTTPS_PROXY` as client-go reads it: never for a loopback server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { kubeconfigSuite, setEnv, status, write } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();

interface ConnectProxy {
  port: number;
  /** Each CONNECT it was asked for: its target and the Proxy-Authorization header it came with. */
  tunnels: Array<{ target: string; auth: string | undefined }>;
  server: Server;
}

/** An HTTP proxy on loopback answering each CONNECT with `answer`: 200 opens the tunnel, anything else refuses it. */
async function startConnectProxy(answer: number): Promise<ConnectProxy> {
  const tunnels: ConnectProxy["tunnels"] = [];
  const server = createServer((_request, response) => response.writeHead(405).end());
  server.on("connect", (request, socket, head) => {
    tunnels.push({ target: request.url ?? "", auth: request.headers["proxy-authorization"] });
    if (answer !== 200) return socket.end(`HTTP/1.1 ${answer} Refused\r\nContent-Length: 0\r\n\r\n`);
    const [host, port] = (request.url ?? "").split(":");
    const upstream = connect(Number(port), host!, () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, tunnels, server };
}

/** One proxy that tunnels and one that refuses with 407 (a separate one: a pooled tunnel would not ask again). */
let open: ConnectProxy;
let refusing: ConnectProxy;

beforeAll(async () => {
  [open, refusing] = await Promise.all([startConnectProxy(200), startConnectProxy(407)]);
});

function stopProxy({ server }: ConnectProxy): void {
  server.closeAllConnections();
  server.close();
}

afterAll(() => {
  for (const proxy of [open, refusing]) stopProxy(proxy);
});

/**
 * Runs `run` with a proxy of its own in `HTTPS_PROXY` (and `NO_PROXY` as given; the lower-case and `ALL_PROXY` ones
 * unset): a tunnel to the API server that another test left in Bun's pool would carry its requests without a CONNECT.
 */
async function withEnvProxy(noProxy: string | undefined, run: (proxy: ConnectProxy) => Promise<void>): Promise<void> {
  const proxy = await startConnectProxy(200);
  const restore = setEnv({
    HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
    https_proxy: undefined,
    ALL_PROXY: undefined,
    all_proxy: undefined,
    NO_PROXY: noProxy,
    no_proxy: undefined,
  });
  try {
    await run(proxy);
  } finally {
    restore();
    stopProxy(proxy);
  }
}

/** The test API server's kubeconfig for `auth`, with `proxy-url` in its cluster. */
function throughProxy(name: string, auth: "token" | "cert", proxyUrl: string): Promise<string> {
  const yaml = suite.server.kubeconfig(auth).replace("    server: ", `    proxy-url: ${proxyUrl}\n    server: `);
  return write(join(suite.dir, `${name}.yaml`), yaml);
}

test("requests go through the proxy's tunnel, with the kubeconfig's CA and either credential", async () => {
  const target = new URL(suite.server.url).host;
  for (const auth of ["token", "cert"] as const) {
    open.tunnels.length = 0;
    const kubeconfig = await throughProxy(auth, auth, `http://127.0.0.1:${open.port}`);
    expect(await status({ kubeconfig })).toBe(200);
    expect(open.tunnels).toEqual([{ target, auth: undefined }]);
  }
});

test("the proxy URL's user and password go to the proxy (Proxy-Authorization), percent-decoded", async () => {
  open.tunnels.length = 0;
  const kubeconfig = await throughProxy("with-user", "token", `http://kube%40corp:p%3Ass@127.0.0.1:${open.port}`);
  expect(await status({ kubeconfig })).toBe(200);
  expect(open.tunnels.map((tunnel) => tunnel.auth)).toEqual([`Basic ${btoa("kube@corp:p:ss")}`]);
});

test("a proxy that refuses the tunnel (407) fails the request saying so; nothing reaches the API server", async () => {
  suite.server.resetRequests();
  const kubeconfig = await throughProxy("refused", "token", `http://127.0.0.1:${refusing.port}`);
  await expect(status({ kubeconfig })).rejects.toThrow("Proxy refused to open a tunnel: 407");
  expect(refusing.tunnels).toHaveLength(1);
  expect(suite.server.requests()).toEqual({});
});

test("Bun quirk: fetch sends a loopback request through HTTPS_PROXY, unless NO_PROXY or proxy: false", async () => {
  const get = async (init: BunFetchRequestInit = {}) => {
    const response = await fetch(`${suite.server.url}/api/v1/namespaces`, { tls: { ca: suite.server.caPem }, ...init });
    await response.body?.cancel();
  };
  // Direct first: a direct connection in Bun's pool is not one a proxied request takes, so a tunnel is always asked.
  await withEnvProxy("127.0.0.1", async (proxy) => {
    await get();
    expect(proxy.tunnels).toEqual([]);
  });
  await withEnvProxy(undefined, async (proxy) => {
    await get({ proxy: false });
    expect(proxy.tunnels).toEqual([]);
    // Go's httpproxy, which client-go and kubectl use, never proxies localhost or a loopback address.
    await get();
    expect(proxy.tunnels).toEqual([{ target: new URL(suite.server.url).host, auth: undefined }]);
  });
});

test("the kubeconfig's proxy-url carries requests to a host NO_PROXY lists too, as kubectl's does", async () => {
  const proxy = await startConnectProxy(200);
  const kubeconfig = await throughProxy("no-proxy", "token", `http://127.0.0.1:${proxy.port}`);
  try {
    expect(await status({ kubeconfig }, { NO_PROXY: "127.0.0.1,localhost", no_proxy: undefined })).toBe(200);
    expect(proxy.tunnels).toEqual([{ target: new URL(suite.server.url).host, auth: undefined }]);
  } finally {
    stopProxy(proxy);
  }
});

test("an API server on a loopback address or localhost is reached directly whatever HTTPS_PROXY says", async () => {
  for (const host of ["127.0.0.1", "localhost"]) {
    const yaml = suite.server.kubeconfig("token").replace("https://127.0.0.1:", `https://${host}:`);
    const kubeconfig = await write(join(suite.dir, `loopback-${host}.yaml`), yaml);
    await withEnvProxy(undefined, async (proxy) => {
      expect(await status({ kubeconfig })).toBe(200);
      expect(proxy.tunnels).toEqual([]);
    });
  }
});
