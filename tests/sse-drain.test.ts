/** A stop of the sse sink (kubemeta's SIGTERM) delivers what is committed to every open stream before ending it. */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, type TestHost } from "../testing/index.ts";
import { openSse, versionsOf, type SseConnection } from "./sse-client.ts";

const hosts: TestHost[] = [];
const connections: SseConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const th of hosts.splice(0)) await th.destroy();
});

test("a stop ends each live stream after what is committed before it, the stop's last commit included", async () => {
  for (let round = 0; round < 3; round++) {
    const logged: { msg: string }[] = [];
    const logger = createLogger({ level: "info", write: (line) => void logged.push(JSON.parse(line)) });
    const th = await startTestHost({ sinks: [{ type: "sse" }], logger });
    hosts.push(th);
    const streams = await Promise.all(["all", "node/n1", "node/n2"].map((stream) => openSse(th.url, { stream })));
    connections.push(...streams);
    for (const c of streams) await c.takeUntil("SYNCED");
    // Applied, not flushed: the stop commits them ("commit what is pending"), then drains the sinks.
    for (let i = 0; i < 300; i++)
      await th.changes.apply("pods", "ADDED", rawPod(`p-${i}`, { node: `n${(i % 2) + 1}` }));
    await th.stop();
    const head = th.host.log.head();
    expect(head).toBe(300);
    for (const c of streams) await c.ended;
    const [all, n1, n2] = streams.map((c) => versionsOf(c.events));
    expect(all).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(n1!.at(-1)).toBe(head - 1);
    expect(n2!.at(-1)).toBe(head);
    // A quick stop gives nothing up (a drain's read, a commit's wait for the WAL's restart), and says none.
    expect(logged.filter((line) => / gave up | given up/.test(line.msg))).toEqual([]);
    expect(logged.at(-1)?.msg).toBe("stopped");
  }
});
