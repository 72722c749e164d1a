/**
 * A response written once a shutdown has begun says `Connection: close`. Bun's stop answers the requests in flight
 * and then closes their connections, saying nothing: a kept-alive client (fetch, a Go or Node agent) sent its next
 * request on the connection as it closed, and got ECONNRESET for it, where told it opens a new one.
 */
import { afterEach, expect, test } from "bun:test";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";
import { holdStateReads } from "./held-state-reads.ts";
import { rawRequest } from "./security-raw.ts";

let host: TestHost | undefined;
afterEach(async () => {
  await host?.destroy();
  host = undefined;
});

test("a request answered after the stop began is told the connection closes", async () => {
  host = await startTestHost({ extra: { shutdownTimeout: "5s" } });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  const held = holdStateReads(host.host.log);
  const exchange = await rawRequest(host.url, "GET /v1/objects HTTP/1.1");
  try {
    await waitFor(() => held.reading === 1, 5_000, "the snapshot's read");
    const stopping = host.host.stop();
    // Answered within the drain, as ever: the read goes on once the stop has begun.
    held.release();
    expect(await exchange.status()).toBe(200);
    await waitFor(() => exchange.text().includes(`"name":"a"`), 5_000, "the whole answer");
    const text = exchange.text();
    const head = text.slice(0, text.indexOf("\r\n\r\n")).toLowerCase();
    expect(head.split("\r\n")).toContain("connection: close");
    await stopping;
    expect(exchange.ended()).toBe(true);
  } finally {
    held.release();
    exchange.close();
  }
}, 30_000);
