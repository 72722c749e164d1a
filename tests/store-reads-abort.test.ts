/**
 * A sink's read of the state a page at a time (sdk/store-reads.ts pagesUntilAborted: a NATS reset, an SSE stream's
 * RESET) when the sink stops between two pages: no further page is read from the store. Each page is a read of a
 * libSQL snapshot (a remote store's round trip, a read transaction held): one started after the stop is read for
 * nobody.
 */
import { afterEach, expect, test } from "bun:test";
import type { CurrentObject } from "../sdk/model.ts";
import { pagesUntilAborted } from "../sdk/store-reads.ts";
import { rawPod, startTestHost, type TestHost } from "../testing/index.ts";

const PAGE = 10;

type Page = { version: number; objects: CurrentObject[] };

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

test("a stop between two pages of the state starts no read of the next page", async () => {
  const th = await startTestHost();
  hosts.push(th);
  for (let i = 0; i < PAGE * 3; i++) await th.changes.apply("pods", "ADDED", rawPod(`p-${i}`, { node: "n1" }));
  await th.changes.flush();

  const store = th.host.log.snapshotPages({}, PAGE)[Symbol.asyncIterator]();
  let pagesAsked = 0;
  const counted: AsyncIterable<Page> = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        pagesAsked++;
        return store.next();
      },
      return: () => store.return!(),
    }),
  };
  const stop = new AbortController();
  const taken: Page[] = [];
  const reading = (async () => {
    for await (const page of pagesUntilAborted(counted, stop.signal)) {
      taken.push(page);
      // The sink stops while its page is sent, which ends with no error of its own.
      stop.abort(new Error("the sink is stopping"));
    }
  })();

  await expect(reading).rejects.toThrow("the sink is stopping");
  expect(taken.map((page) => page.objects.length)).toEqual([PAGE]);
  expect(pagesAsked).toBe(1);
}, 30_000);
