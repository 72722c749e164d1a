/**
 * Response compression against the API server: the test API server gzips a LIST as kube-apiserver does
 * (APIResponseCompression, on by default: past 128 KiB, for a client whose Accept-Encoding lists gzip; never a
 * watch), and kubemeta never asks for it, so its paginated lists cost the control plane no gzip.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { KubeConfig } from "@kubernetes/client-node";
import { createTransport } from "../kube/transport.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { testPod } from "./apiserver-client.ts";
import { inSync, RecordingSink, withCluster, within } from "./source-kubernetes-recorder.ts";

/** What Bun's fetch asks for unless told otherwise (kubemeta's requests would, but for kube/transport.ts). */
const BUN_DEFAULT = "gzip, deflate, br, zstd";

/** The body as sent: `decompress: false` (which also drops Bun's own Accept-Encoding, hence the explicit one). */
function rawList(server: TestApiServer, path: string, acceptEncoding: string): Promise<Response> {
  const headers = { authorization: `Bearer ${server.token}`, "accept-encoding": acceptEncoding };
  return fetch(`${server.url}${path}`, { headers, tls: { ca: server.caPem }, decompress: false });
}

describe("the test API server compresses as kube-apiserver does", () => {
  let server: TestApiServer;
  let plain: TestApiServer;
  beforeAll(async () => {
    server = await startTestApiServer();
    plain = await startTestApiServer({ compression: false });
    // Forty real-size pods (~9 KB each, with managedFields): a list of ~360 KB, past the 128 KiB threshold.
    for (const target of [server, plain])
      for (let i = 0; i < 40; i++) target.create(testPod(`pod-${String(i).padStart(2, "0")}`, "big"));
  });
  afterAll(async () => {
    await server.stop();
    await plain.stop();
  });

  test("a LIST past 128 KiB to a client that accepts gzip comes gzipped, the same bytes once inflated", async () => {
    const identity = await rawList(server, "/api/v1/namespaces/big/pods", "identity");
    expect(identity.headers.get("content-encoding")).toBeNull();
    const text = await identity.text();
    expect(text.length).toBeGreaterThan(128 * 1024);

    const before = server.gzippedLists();
    const gzipped = await rawList(server, "/api/v1/namespaces/big/pods", BUN_DEFAULT);
    expect(gzipped.headers.get("content-encoding")).toBe("gzip");
    expect(gzipped.headers.get("vary")).toBe("Accept-Encoding");
    const body = new Uint8Array(await gzipped.arrayBuffer());
    expect(body.length).toBeLessThan(text.length / 3);
    const inflated = new TextDecoder().decode(Bun.gunzipSync(body));
    expect(inflated.replace(/"resourceVersion":"\d+"/, "")).toBe(text.replace(/"resourceVersion":"\d+"/, ""));
    expect(server.gzippedLists()).toBe(before + 1);
  });

  test("a small page, a watch, an Accept-Encoding without gzip, or a server without compression: never", async () => {
    const before = server.gzippedLists();
    const small = await rawList(server, "/api/v1/namespaces/big/pods?limit=5", "gzip");
    expect(small.headers.get("content-encoding")).toBeNull();
    expect(((await small.json()) as { items: unknown[] }).items).toHaveLength(5);

    const brotliOnly = await rawList(server, "/api/v1/namespaces/big/pods", "br, zstd");
    expect(brotliOnly.headers.get("content-encoding")).toBeNull();
    await brotliOnly.arrayBuffer();

    const stop = new AbortController();
    const streamingList = "watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan";
    const watch = await fetch(`${server.url}/api/v1/namespaces/big/pods?${streamingList}`, {
      headers: { authorization: `Bearer ${server.token}` },
      tls: { ca: server.caPem },
      decompress: false,
      signal: stop.signal,
    });
    expect(watch.status).toBe(200);
    expect(watch.headers.get("content-encoding")).toBeNull();
    stop.abort();

    const uncompressed = await rawList(plain, "/api/v1/namespaces/big/pods", "gzip");
    expect(uncompressed.headers.get("content-encoding")).toBeNull();
    await uncompressed.arrayBuffer();
    expect(server.gzippedLists()).toBe(before);
    expect(plain.gzippedLists()).toBe(0);
  });
});

test("kubemeta asks for no compression: its paginated lists of a compressing server come plain", () =>
  withCluster(
    async ({ server, start }) => {
      const sink = new RecordingSink();
      const running = await start(sink, { resources: ["pods", "nodes"] });
      await within(running.synced, 5000, "sync");
      expect(inSync(sink, server, "Pod")).toBe(true);
      expect(server.requests()["list pods"]).toBe(1);
      expect(server.gzippedLists()).toBe(0);
      // The same list to Bun's fetch as it comes (it inflates what it asked for) is gzipped: the server would have.
      const asked = await fetch(`${server.url}/api/v1/pods`, {
        headers: { authorization: `Bearer ${server.token}` },
        tls: { ca: server.caPem },
      });
      expect(((await asked.json()) as { items: unknown[] }).items).toHaveLength(40);
      expect(server.gzippedLists()).toBe(1);
    },
    { streamingList: false },
    { nodes: 4, podsPerNode: 10 },
  ));

test("a server that gzips even so (a proxy that ignores Accept-Encoding): Bun's fetch still inflates it", async () => {
  const list = JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: {}, items: [] });
  let asked: string | null | undefined;
  const proxy = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      asked = request.headers.get("accept-encoding");
      return new Response(Bun.gzipSync(new TextEncoder().encode(list)), {
        headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
      });
    },
  });
  try {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://127.0.0.1:${proxy.port}`, skipTLSVerify: true }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const response = await createTransport(kc, () => kc).get("/api/v1/pods", AbortSignal.timeout(5000));
    expect(asked).toBe("identity");
    expect(await response.text()).toBe(list);
  } finally {
    await proxy.stop(true);
  }
});

test("Bun quirk: fetch asks for gzip, deflate, br and zstd unless told; `decompress: false` asks nothing", async () => {
  const echo = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (request) => new Response(String(request.headers.get("accept-encoding"))),
  });
  try {
    const url = `http://127.0.0.1:${echo.port}/`;
    expect(await (await fetch(url)).text()).toBe(BUN_DEFAULT);
    expect(await (await fetch(url, { decompress: false })).text()).toBe("null");
    expect(await (await fetch(url, { headers: { "Accept-Encoding": "identity" } })).text()).toBe("identity");
  } finally {
    await echo.stop(true);
  }
});
