/**
 * A host whose `jsonl` sink writes to stdout (or to SINK_PATH: `/dev/stderr`) while a webhook that cannot connect
 * fills stdout with warnings (tests/plugins-jsonl.test.ts). Applies COUNT pods (named PREFIX-<i>, `web` by default),
 * says "applied <its URL> <its pid>" on stderr (on stdout when the sink writes to stderr), and runs, as main.ts does,
 * until SIGTERM. With DIR, its store is kept there, for a restart on it.
 */
import { createLogger } from "../host/logger.ts";
import { guardProcess } from "../host/supervise.ts";
import { rawPod, startTestHost, waitFor } from "../testing/index.ts";

const count = Number(process.env.COUNT);
const dir = process.env.DIR;
const logger = createLogger({ level: "info" });
const host = await startTestHost({
  dir,
  logger,
  sinks: [
    { type: "jsonl", path: process.env.SINK_PATH ?? "-", retry: { initial: "10ms", max: "50ms" } },
    // Port 9 refuses: every attempt is a warning line, a few each millisecond.
    { type: "webhook", url: "http://127.0.0.1:9/", secret: "0123456789abcdef", retry: { initial: "1ms", max: "2ms" } },
  ],
});
// As main.ts: what no handler caught is counted, and the process goes on.
guardProcess(logger, host.host.metrics);
// Big enough that the pipe pushes back within a few hundred lines.
const labels = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`label-${i}`, "v".repeat(60)]));
const prefix = process.env.PREFIX ?? "web";
const before = host.host.log.head();
for (let i = 0; i < count; i++) host.changes.apply("pods", "ADDED", rawPod(`${prefix}-${i}`, { node: "n1", labels }));
await waitFor(() => host.host.log.head() >= before + count, 20_000, "every pod committed");
const said = process.env.SINK_PATH === "/dev/stderr" ? process.stdout : process.stderr;
said.write(`applied ${host.url} ${process.pid}\n`);
process.once("SIGTERM", () => void (dir ? host.stop() : host.destroy()).then(() => process.exit(0)));
