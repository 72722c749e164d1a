/**
 * Clients gone before their snapshot is read cost no store reads: between pages, a read stops at once; and an SSE
 * subscribe whose client left before it was answered (a reconnect storm's) opens no session.
 */
import { afterAll, expect, test } from "bun:test";
import type { CommittedLog } from "../sdk/contract.ts";
import { readObjectPages } from "../sdk/http.ts";
import { rawPod, startTestHost } from "../testing/index.ts";
import { openSse } from "./sse-client.ts";

const th = await startTestHost({ sinks: [{ type: "sse" }] });
afterAll(() => th.destroy());
// Three pages of SNAPSHOT_PAGE (100).
for (let i = 0; i < 250; i++) await th.changes.apply("pods", "ADDED", rawPod(`web-${i}`));
await th.changes.flush();

test("a snapshot read whose client left after a page reads no further page from the store", async () => {
  let pagesRead = 0;
  const log = th.host.log;
  const counted: CommittedLog = {
    ...log,
    async *snapshotPages(query, pageSize) {
      for await (const page of log.snapshotPages(query, pageSize)) {
        pagesRead++;
        yield page;
      }
    },
  };
  const leaving = new AbortController();
  const pages = readObjectPages(counted, {}, undefined, leaving.signal);
  expect((await pages.next()).value?.objects).toHaveLength(100);
  leaving.abort();
  expect(await pages.next().catch((error: unknown) => error)).toBeInstanceOf(DOMException);
  expect(pagesRead).toBe(1);
});

test("a /v1/watch whose client is gone before it is answered opens no session: no RESET, no snapshot", async () => {
  const resets = () => /kubemeta_sse_resets_total (\d+)/.exec(th.host.metrics.render())?.[1];
  const before = Number(resets());
  const gone = await th.host.http.app.fetch(new Request(`${th.url}/v1/watch`, { signal: AbortSignal.abort() }));
  expect(gone.status).toBe(499);
  // A client still there gets its RESET, counted: the one gone before, started first, would have been counted too.
  const c = await openSse(th.url, {});
  expect((await c.next()).type).toBe("RESET");
  c.close();
  expect(Number(resets())).toBe(before + 1);
});
