/**
 * Threads that do bulk work run at a lower priority than the event loop's (sdk/priority.ts): the parse threads, the
 * store's writer and its checkpointer WORKER_NICE_STEP nicer than the process, the event loop at its own. On 2 busy
 * cores this took /healthz's p99 during an initial sync of 150,000 pods from 71–102 to 43–54 ms (bench/RESULTS.md).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../host/logger.ts";
import { ParseThreads } from "../plugins/sources/kubernetes/parse-threads.ts";
import { openConnections } from "../plugins/stores/libsql/connection.ts";
import { WORKER_NICE_STEP } from "../sdk/priority.ts";
import { waitFor } from "../testing/index.ts";

const dir = await mkdtemp(join(tmpdir(), "kubemeta-priority-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The nice value of each thread of this process, by its name. */
async function niceByThread(): Promise<Map<string, number>> {
  const nice = new Map<string, number>();
  for (const tid of await readdir("/proc/self/task")) {
    const name = (await Bun.file(`/proc/self/task/${tid}/comm`).text()).trim();
    const stat = await Bun.file(`/proc/self/task/${tid}/stat`).text();
    nice.set(name, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
  }
  return nice;
}

test.skipIf(process.platform !== "linux")(
  "parse threads, the store's writer and its checkpointer give way to the event loop",
  async () => {
    const connections = await openConnections(`file:${join(dir, "kubemeta.db")}`, silentLogger);
    const threads = new ParseThreads(1, { module: new URL("../core/prepare.ts", import.meta.url).href, options: {} });
    try {
      const line = JSON.stringify({
        type: "ADDED",
        object: { metadata: { name: "a", uid: "u", resourceVersion: "1" } },
      });
      const events = await threads.parse({ kind: "ConfigMap", apiVersion: "v1" }, [new TextEncoder().encode(line)]);
      expect(events.map((event) => event.type)).toEqual(["ADDED"]);
      await connections.writer.execute("SELECT 1");
      const workers = ["parse-1", "store-writer", "checkpointer"];
      const own = (await niceByThread()).get((await Bun.file("/proc/self/comm").text()).trim())!;
      // The checkpointer's thread runs its module (and so lowers itself) in its own time.
      const expected = Math.min(19, own + WORKER_NICE_STEP);
      await waitFor(
        async () => {
          const nice = await niceByThread();
          return workers.every((name) => nice.get(name) === expected);
        },
        5_000,
        `${workers.join(", ")} at nice ${expected}, the event loop's thread at ${own}`,
      );
    } finally {
      threads.close();
      await connections.close();
    }
  },
  15_000,
);
