/**
 * An idle /v1/watch stream stays open for as long as the subscriber wants, although the
 * listener closes other quiet connections (Bun.serve's idleTimeout, here 2 s): the stream
 * is exempt from it, and heartbeat comments keep proxies on the way from cutting it.
 */
import { afterAll, expect, test } from "bun:test";
import { startTestHost, type TestHost } from "../testing/index.ts";
import { json, openSse } from "./sse-client.ts";

let th: TestHost | undefined;
afterAll(() => th?.destroy());

/**
 * Past the first heartbeat, 9 s after the stream went quiet: longer than the 4 to 8 s after which the listener closes a
 * quiet request (its idle timeout 2 s, checked every 4 s), so a stream not exempt would be closed before it.
 */
const HOLD_MS = 10_500;

test(
  "an idle stream survives 9 s of silence to its heartbeat, then still gets live updates",
  async () => {
    // The heartbeat is longer than the listener's idle timeout: only the exemption keeps the stream open between beats.
    th = await startTestHost({ sinks: [{ type: "sse", heartbeat: "9s" }], http: { idleTimeout: "2s" } });
    const c = await openSse(th.url, { stream: "shared" });
    expect((await c.takeUntil("SYNCED")).map((e) => e.type)).toEqual(["RESET", "SYNCED"]);
    const opening = c.comments;

    const outcome = await c
      .until(() => c.isEnded, HOLD_MS, "the stream to end")
      .then(
        () => "ended",
        () => "open",
      );
    expect(outcome).toBe("open");
    expect(c.comments - opening).toBeGreaterThanOrEqual(1);

    await th.changes.apply("services", "ADDED", {
      kind: "Service",
      apiVersion: "v1",
      metadata: { name: "api", namespace: "default", uid: "uid-svc", resourceVersion: "7" },
      spec: { type: "ClusterIP", clusterIP: "10.96.0.10" },
    });
    expect(json(await c.next())).toMatchObject({ type: "ADDED", kind: "Service", name: "api", stream: "shared" });
    c.close();
  },
  HOLD_MS + 15_000,
);

test("the heartbeat interval is configurable", async () => {
  const quick = await startTestHost({ sinks: [{ type: "sse", heartbeat: "50ms" }] });
  try {
    const c = await openSse(quick.url);
    await c.until(() => c.comments >= 4, 2000, "four heartbeats");
    c.close();
  } finally {
    await quick.destroy();
  }
});
