/**
 * `GET /v1/objects` requests waiting for their turn among the snapshots read at once (sdk/http.ts
 * HTTP_SNAPSHOT_READS) when the store's file is found replaced: the store serves no read any more, so they are answered
 * 503 then, as the reads refused by the store are. They waited on for turns that slow clients held, and the stop that
 * follows a replacement cut them at its drain's end: the connection closed, no answer at all.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { isStoreReplaced } from "../sdk/contract.ts";
import { HTTP_SNAPSHOT_READS, readObjectPages } from "../sdk/http.ts";
import { makePod } from "../simulator/pods.ts";
import { startTestHost, type TestHost } from "../testing/index.ts";

let th: TestHost | undefined;
afterEach(() => th?.destroy());

test("/v1/objects waiting for a snapshot turn when the store's file is replaced: answered 503 at once", async () => {
  th = await startTestHost({ extra: { shutdownTimeout: "3s" } });
  await th.changes.apply("pods", "ADDED", makePod({ name: "web-1", namespace: "shop" }));
  await th.changes.flush();
  // Every turn held, as by clients that take their snapshot's pages slowly.
  const held = Array.from({ length: HTTP_SNAPSHOT_READS }, () => readObjectPages(th!.host.log, {}, undefined));
  for (const pages of held) await pages.next();
  const objects = () =>
    fetch(`${th!.url}/v1/objects`).then(
      (response) => `${response.status}, retry after ${response.headers.get("retry-after")} s`,
      () => "no answer",
    );
  const waiting = Promise.all(Array.from({ length: 4 }, objects));

  await Promise.all(["", "-wal", "-shm"].map((suffix) => rm(join(th!.dir, `kubemeta.db${suffix}`))));
  expect(isStoreReplaced(await th.host.failed.catch((error: unknown) => error))).toBe(true);
  const deadline = Bun.sleep(2_000).then(() => "still waiting 2 s after");
  expect(await Promise.race([waiting, deadline])).toEqual(Array(4).fill("503, retry after 5 s"));
  for (const pages of held) await pages.return(undefined);
}, 30_000);
