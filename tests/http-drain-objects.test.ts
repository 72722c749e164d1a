/**
 * `GET /v1/objects` when a SIGTERM's HTTP drain runs out of time (shutdownTimeout, less the store close's share).
 * A request not answered yet (waiting for its turn among the snapshots read at once, or for its first pages from a
 * store that holds its reads) is answered 503 with Retry-After before its connection closes: it was closed with
 * nothing, which fetch reports as ECONNRESET and curl as `Empty reply from server`. One whose body streams ends
 * without its last chunk, which every HTTP/1.1 client tells from a whole answer.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import type { CommittedLog } from "../sdk/contract.ts";
import { rawPod, startTestHost, type TestHost, waitFor } from "../testing/index.ts";
import { holdStatePages, holdStateReads } from "./held-state-reads.ts";
import { chunkedBody, rawRequest } from "./security-raw.ts";

/** Three pages of the state (SNAPSHOT_PAGE 100). */
const PODS = 250;
const CUT = "http: requests still in flight when the shutdown's time ran out are cut";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

/** A host of PODS pods whose HTTP drain runs out 1.6 s into its stop; its warnings. */
async function hostOfPods(): Promise<{ th: TestHost; warnings: () => Record<string, unknown>[] }> {
  const lines: string[] = [];
  const logger = createLogger({ level: "warn", write: (line) => void lines.push(line) });
  const th = await startTestHost({ logger, extra: { shutdownTimeout: "2s" } });
  hosts.push(th);
  for (let i = 0; i < PODS; i++) await th.changes.apply("pods", "ADDED", rawPod(`p-${i}`, { node: "n1" }));
  await th.changes.flush();
  return { th, warnings: () => lines.map((line) => JSON.parse(line)) };
}

/**
 * How many reads of the store's state a handler has asked for: /v1/objects reads `retired` first, then, in the same
 * turn of the loop, takes its place in line for a turn.
 */
function arrivals(log: CommittedLog): () => number {
  const retired = log.retired;
  let asked = 0;
  Object.defineProperty(log, "retired", {
    configurable: true,
    get: () => {
      asked++;
      return retired;
    },
  });
  return () => asked;
}

test("requests not answered when the drain runs out get 503 with Retry-After, not a closed connection", async () => {
  const { th, warnings } = await hostOfPods();
  const held = holdStateReads(th.host.log);
  const arrived = arrivals(th.host.log);
  try {
    const answers = [0, 1, 2].map(() =>
      fetch(`${th.url}/v1/objects`).then(async (response) => ({
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        body: await response.json(),
      })),
    );
    // Two hold the turns, their first page's read held as a store that stopped answering holds it; one waits.
    await waitFor(() => held.reading === 2 && arrived() === 3, 5_000, "two snapshots reading, one in line");
    await th.host.stop();
    const refusal = { status: 503, retryAfter: "5", body: { error: "kubemeta is shutting down; ask again later" } };
    expect(await Promise.all(answers)).toEqual([refusal, refusal, refusal]);
    // Each was answered: none is said to be cut.
    expect(warnings().filter((line) => line.msg === CUT)).toEqual([]);
  } finally {
    held.release();
  }
}, 30_000);

test("a /v1/objects whose body streams when the drain runs out ends without its last chunk", async () => {
  const { th, warnings } = await hostOfPods();
  const held = holdStatePages(th.host.log);
  const reader = await rawRequest(th.url, "GET /v1/objects HTTP/1.1");
  try {
    await waitFor(() => held.read === 1, 5_000, "the first page");
    // Its second page read, the answer streams; its third is held.
    held.next();
    await waitFor(() => held.read === 2 && reader.text().includes(`"name":"p-199"`), 5_000, "two pages sent");
    const stopping = th.host.stop();
    await waitFor(reader.ended, 5_000, "the connection's close");
    // The third page's read, a store's slow answer, ends now: its transaction held, the store could not close.
    held.release();
    await stopping;
    const text = reader.text();
    const head = text.slice(0, text.indexOf("\r\n\r\n")).toLowerCase();
    expect(head).toStartWith("http/1.1 200 ok\r\n");
    expect(head).toContain("\r\ntransfer-encoding: chunked");
    // The two pages sent, then no last (zero-length) chunk: the client knows it did not get the whole answer.
    expect(text.match(/\{"kind":"Pod","uid"/g)?.length).toBe(200);
    expect(chunkedBody(text) === undefined).toBe(true);
    expect(warnings().filter((line) => line.msg === CUT)).toEqual([expect.objectContaining({ requests: 1 })]);
  } finally {
    held.release();
    reader.close();
  }
}, 30_000);
