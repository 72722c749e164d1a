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
  "appends the named stream's envelopes (its directory made), and a restart goes on after the cursor without " +
    "repeating a line",
  async () => {
    const dir = await tempDir();
    const file = join(dir, "not-yet", "n1.jsonl");
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

test("to stdout, beside kubemeta's own log lines, every line stays whole while the reader is slow", async () => {
  const count = 2_000;
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "jsonl-stdout-host.ts")], {
    env: { ...process.env, COUNT: String(count) },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    // Nothing is read from stdout until every pod is committed: the pipe is full by then and pushes back.
    const stderr = child.stderr.getReader();
    let said = "";
    while (!said.includes("applied\n")) {
      const chunk = await stderr.read();
      if (chunk.done) throw new Error(`the host ended before applying its pods: ${said}`);
      said += new TextDecoder().decode(chunk.value);
    }
    // A line lost inside a broken one would leave the loop waiting: ended, the output ends too.
    const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const versions = new Set<number>();
    const broken: string[] = [];
    let logLines = 0;
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        let parsed: { version?: number; level?: string };
        try {
          parsed = JSON.parse(line) as typeof parsed;
        } catch {
          broken.push(line.slice(0, 200));
          continue;
        }
        if (parsed.version !== undefined) versions.add(parsed.version);
        else if (parsed.level !== undefined) logLines++;
      }
      // Versions come in order: past the last one, nothing more is to come.
      if (versions.has(count)) break;
    }
    clearTimeout(deadline);
    expect(broken).toEqual([]);
    expect(versions.size).toBe(count);
    // The webhook's warnings did share the pipe.
    expect(logLines).toBeGreaterThan(0);
  } finally {
    child.kill("SIGTERM");
    await child.exited;
  }
}, 60_000);
