/**
 * `stallAfter`, the standard key of every sink built on `consume` (sdk stallAfterSchema): how long one batch may stay
 * undelivered before `kubemeta_sink_stalled` is 1 and "held one batch too long" is logged. The jsonl and nats sinks had
 * a fixed minute, and the example plugin users copy (examples/sink-plugin) no such key; the webhook's own is tested
 * through an outage in tests/faults-webhook.test.ts.
 */
import { afterEach, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { createLogger } from "../host/logger.ts";
import { sinkMetric, type Logged } from "./plugins-fixtures.ts";
import { natsSink } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Far below the default minute: a stall seen within seconds is the key's. */
const STALL_AFTER = "300ms";
const SEEN_WITHIN_MS = 10_000;
/** Each test's own: two waits of SEEN_WITHIN_MS at most, past bun's default of 5 s. */
const TEST_MS = 30_000;
const STALLED = "sink has held one batch too long; it delays only itself";
const RECOVERED = "sink no longer holds the batch it was stalled on";

/** A host in `dir` with `sink` (stallAfter short), its log lines kept in `logged`. */
async function hostWith(dir: string, sink: Record<string, unknown>): Promise<{ th: TestHost; logged: Logged[] }> {
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const th = await startTestHost({ dir, sinks: [{ ...sink, stallAfter: STALL_AFTER }], logger });
  cleanups.push(() => th.destroy());
  return { th, logged };
}

/** The sink `name`'s stall gauge reaching `value`, and the line that says so logged once. */
async function expectStalled(th: TestHost, logged: Logged[], name: string, value: 0 | 1): Promise<void> {
  const what = `${name}'s kubemeta_sink_stalled at ${value}`;
  await waitFor(() => sinkMetric(th, "gauge", "kubemeta_sink_stalled", name) === value, SEEN_WITHIN_MS, what);
  expect(logged.filter((line) => line.msg === (value ? STALLED : RECOVERED))).toHaveLength(1);
}

/** A file where a sink's directory should be: every write under it fails (ENOTDIR) until it is removed. */
async function fileInTheWay(): Promise<{ dir: string; inTheWay: string }> {
  const dir = await tempDir();
  const inTheWay = join(dir, "out");
  await writeFile(inTheWay, "");
  return { dir, inTheWay };
}

async function addPod(th: TestHost): Promise<void> {
  th.changes.apply("pods", "ADDED", rawPod("web-0", { node: "n1" }));
  await th.changes.flush();
}

test(
  "a jsonl sink whose writes fail for longer than stallAfter reports the stall, and its end",
  async () => {
    const { dir, inTheWay } = await fileInTheWay();
    const { th, logged } = await hostWith(dir, {
      type: "jsonl",
      path: join(inTheWay, "updates.jsonl"),
      retry: { initial: "5ms", max: "50ms" },
    });
    await addPod(th);
    await expectStalled(th, logged, "jsonl", 1);
    await rm(inTheWay);
    await expectStalled(th, logged, "jsonl", 0);
  },
  TEST_MS,
);

test(
  "a nats sink whose server is away for longer than stallAfter reports the stall, and its end",
  async () => {
    const server = await startNatsServer();
    cleanups.push(() => server.destroy());
    const { th, logged } = await hostWith(await tempDir(), natsSink(server));
    await server.stop();
    await addPod(th);
    await expectStalled(th, logged, "nats", 1);
    await server.restart();
    await expectStalled(th, logged, "nats", 0);
  },
  TEST_MS,
);

test(
  "the example sink plugin (examples/sink-plugin), whose writes fail for longer than stallAfter, reports the stall",
  async () => {
    const { dir, inTheWay } = await fileInTheWay();
    const { th, logged } = await hostWith(dir, {
      type: join(import.meta.dir, "../examples/sink-plugin/deletions.ts"),
      file: join(inTheWay, "deletions.log"),
      retry: { initial: "5ms", max: "50ms" },
    });
    await addPod(th);
    th.changes.apply("pods", "DELETED", rawPod("web-0", { node: "n1" }));
    await expectStalled(th, logged, "deletions", 1);
    await rm(inTheWay);
    await expectStalled(th, logged, "deletions", 0);
  },
  TEST_MS,
);
