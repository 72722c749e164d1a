/**
 * A host whose `jsonl` sink appends to FILE, its store the libSQL server at STORE_URL: under a file-size limit (as a
 * full disk, tests/plugins-jsonl.test.ts) it writes no other file. Applies COUNT pods and runs until SIGTERM; logs
 * on stdout, debug lines too: a retried write's failure after the first is one. BATCH_SIZE: its `batch.size`.
 */
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost } from "../testing/index.ts";

const host = await startTestHost({
  logger: createLogger({ level: "debug" }),
  extra: { store: { type: "libsql", url: process.env.STORE_URL } },
  sinks: [
    {
      type: "jsonl",
      path: process.env.FILE,
      retry: { initial: "10ms", max: "50ms" },
      batch: { size: Number(process.env.BATCH_SIZE ?? 500) },
    },
  ],
});
const labels = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`label-${i}`, "v".repeat(60)]));
for (let i = 0; i < Number(process.env.COUNT); i++)
  host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1", labels }));
process.once("SIGTERM", () => void host.stop().then(() => process.exit(0)));
