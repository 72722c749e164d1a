/**
 * A host whose `jsonl` sink writes to stdout while a webhook that cannot connect fills the same stdout with
 * warnings (tests/plugins-jsonl.test.ts). Applies COUNT pods, says "applied" on stderr, and runs until SIGTERM.
 */
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, waitFor } from "../testing/index.ts";

const count = Number(process.env.COUNT);
const host = await startTestHost({
  logger: createLogger({ level: "info" }),
  sinks: [
    { type: "jsonl", path: "-" },
    // Port 9 refuses: every attempt is a warning line, a few each millisecond.
    { type: "webhook", url: "http://127.0.0.1:9/", secret: "s", retry: { initial: "1ms", max: "2ms" } },
  ],
});
// Big enough that the pipe pushes back within a few hundred lines.
const labels = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`label-${i}`, "v".repeat(60)]));
for (let i = 0; i < count; i++) host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1", labels }));
await waitFor(() => host.host.log.head() >= count, 20_000, "every pod committed");
process.stderr.write("applied\n");
process.once("SIGTERM", () => void host.destroy().then(() => process.exit(0)));
