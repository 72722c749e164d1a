/** The reference sink `jsonl`: one envelope per line, the stream a user names, a cursor that survives restarts. */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";

let host: TestHost | undefined;
afterEach(async () => {
  await host?.destroy();
  host = undefined;
});

async function envelopes(file: string): Promise<Envelope[]> {
  const f = Bun.file(file);
  return (await f.exists())
    ? (await f.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Envelope)
    : [];
}

test(
  "appends the named stream's envelopes, " + "and a restart goes on after the cursor without repeating a line",
  async () => {
    const dir = await tempDir();
    const file = join(dir, "n1.jsonl");
    const sinks = [{ type: "jsonl", path: file, stream: "node/n1" }];
    host = await startTestHost({ dir, sinks });
    host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
    host.changes.apply("pods", "ADDED", rawPod("b", { node: "n2" }));
    host.changes.apply("pods", "ADDED", rawPod("c", { node: "n1" }));
    await waitFor(async () => (await envelopes(file)).length === 2, 5_000, "two lines");
    await waitFor(
      async () =>
        (await (await fetch(`${host!.url}/metrics`)).text()).includes('kubemeta_sink_lag_versions{sink="jsonl"} 0'),
      5_000,
      "lag 0",
    );

    await host.stop();
    host = await startTestHost({ dir, sinks });
    host.changes.apply("pods", "DELETED", rawPod("a", { node: "n1" }));
    await waitFor(async () => (await envelopes(file)).length === 3, 5_000, "a third line");
    const lines = await envelopes(file);
    expect(lines.map((e) => [e.name, e.type, e.stream, e.version, e.prev])).toEqual([
      ["a", "ADDED", "node/n1", 1, 0],
      ["c", "ADDED", "node/n1", 3, 1],
      ["a", "DELETED", "node/n1", 4, 3],
    ]);
    expect(lines[0]!.epoch).toBe(host.host.epoch);
  },
);
