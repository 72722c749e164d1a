/** The reference sink `jsonl`: one envelope per line, the stream a user names, a cursor that survives restarts. */
import { afterEach, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { chmod, mkdir, rename, rm, truncate } from "node:fs/promises";
import { join } from "node:path";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { completeLines } from "./file-lines.ts";
import { metric } from "./cluster-checks.ts";
import { exitWithin } from "./reliability-process.ts";

let host: TestHost | undefined;
afterEach(async () => {
  await host?.destroy();
  host = undefined;
});

async function envelopes(file: string): Promise<Envelope[]> {
  return (await completeLines(file)).map((line) => JSON.parse(line) as Envelope);
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

/**
 * tests/jsonl-stdout-host.ts as a process, once it has committed its pods: its stdout not read yet (or sent where
 * the shell redirections `into` say, fd 3 the shell's stdout), its URL and its pid.
 */
async function startStdoutHost(env: Record<string, string>, into?: string) {
  const host = [process.execPath, join(import.meta.dir, "jsonl-stdout-host.ts")];
  const command = into ? ["bash", "-c", `set -o pipefail; exec 3>&1; "$0" "$1" ${into}`, ...host] : host;
  const child = Bun.spawn(command, { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  // Said on stdout by a host whose sink writes to stderr.
  const stderr = (env.SINK_PATH === "/dev/stderr" ? child.stdout : child.stderr).getReader();
  let said = "";
  for (;;) {
    const applied = /applied (\S+) (\d+)\n/.exec(said);
    if (applied) return { child, url: applied[1]!, pid: Number(applied[2]) };
    const chunk = await stderr.read();
    if (chunk.done) throw new Error(`the host ended before applying its pods: ${said}`);
    said += new TextDecoder().decode(chunk.value);
  }
}

/** The lines of a stream as they come. */
async function* linesOf(stream: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    yield* lines;
  }
}

test("to stdout, beside kubemeta's own log lines, every line stays whole while the reader is slow", async () => {
  const count = 2_000;
  // Nothing is read from stdout until every pod is committed: the pipe is full by then and pushes back.
  const { child } = await startStdoutHost({ COUNT: String(count) });
  try {
    // A line lost inside a broken one would leave the loop waiting: ended, the output ends too.
    const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const versions = new Set<number>();
    const broken: string[] = [];
    let logLines = 0;
    for await (const line of linesOf(child.stdout)) {
      let parsed: { version?: number; level?: string };
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch {
        broken.push(line.slice(0, 200));
        continue;
      }
      if (parsed.version !== undefined) versions.add(parsed.version);
      else if (parsed.level !== undefined) logLines++;
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

test("stdout whose reader is gone mid-write: each write after is refused and retried, and a restart with a reader " +
  "goes on from the first update it did not get", async () => {
  const dir = await tempDir();
  const got = join(dir, "got.jsonl");
  try {
    // Lines of about 5 KB: the reader leaves within the first batch, 200 of them written at once, part taken.
    const first = await startStdoutHost({ COUNT: "200", DIR: dir, GOT: got }, `| head -c 100000 > "$GOT"`);
    try {
      // The write cut short is tried again: refused (Bun, unless told, reported it and every later one as written).
      const jsonl = { sink: "jsonl" };
      await waitFor(
        async () =>
          ((await metric(first.url, "kubemeta_sink_delivery_failures_total", { ...jsonl, step: "deliver" })) ?? 0) >=
            2 || (await metric(first.url, "kubemeta_sink_lag_versions", jsonl)) === 0,
        10_000,
        "the batch cut short tried again",
      );
      expect(await metric(first.url, "kubemeta_unhandled_errors_total", { type: "rejection" })).toBe(0);
    } finally {
      // The shell ends with the host: once it has, the pid may be another process's.
      if (first.child.exitCode === null) process.kill(first.pid, "SIGTERM");
    }
    expect(await first.child.exited).toBe(0);
    const lastGot = Math.max(0, ...(await envelopes(got)).map((e) => e.version ?? 0));

    const second = await startStdoutHost({ COUNT: "1", DIR: dir, PREFIX: "after" });
    try {
      const versions: number[] = [];
      for await (const line of linesOf(second.child.stdout)) {
        const { version } = JSON.parse(line) as { version?: number };
        if (version !== undefined) versions.push(version);
        if (version === 201) break;
      }
      expect(versions[0]).toBeLessThanOrEqual(lastGot + 1);
      expect(versions).toEqual(Array.from({ length: 202 - versions[0]! }, (_, i) => versions[0]! + i));
    } finally {
      second.child.kill("SIGTERM");
      await second.child.exited;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

test("/dev/stderr, a pipe the process holds, whose reader is gone: each write is refused and retried, none held for " +
  "good, and stop is prompt", async () => {
  // Its stderr into head, its stdout (its log and what it says) the shell's.
  const into = "2>&1 >&3 3>&- | head -c 100000 > /dev/null";
  const host = await startStdoutHost({ COUNT: "200", SINK_PATH: "/dev/stderr" }, into);
  try {
    // Opened to read as well, the pipe had the process as a reader: a write blocked once it was full, for good.
    const deliver = { sink: "jsonl", step: "deliver" };
    const refused = async () => (await metric(host.url, "kubemeta_sink_delivery_failures_total", deliver)) ?? 0;
    await waitFor(async () => (await refused()) >= 2, 10_000, "the writes refused");
  } finally {
    if (host.child.exitCode === null) process.kill(host.pid, "SIGTERM");
  }
  // Nothing in delivery to give up on (was: the 3 s drain, then stopWaitMs, 5 s).
  expect(await exitWithin(host.child, 3_000)).toBe(0);
}, 60_000);

test("/dev/stdout that is a file (kubemeta > file): every line whole, the log's beside the sink's, none written " +
  "over", async () => {
  const dir = await tempDir();
  const got = join(dir, "stdout.jsonl");
  try {
    const host = await startStdoutHost({ COUNT: "200", SINK_PATH: "/dev/stdout", GOT: got }, '> "$GOT"');
    try {
      const jsonl = { sink: "jsonl" };
      await waitFor(async () => (await metric(host.url, "kubemeta_sink_lag_versions", jsonl)) === 0, 10_000, "all");
    } finally {
      process.kill(host.pid, "SIGTERM");
    }
    expect(await exitWithin(host.child, 5_000)).toBe(0);
    const versions = new Set<number>();
    const broken: string[] = [];
    for (const line of (await Bun.file(got).text()).split("\n").filter(Boolean)) {
      try {
        const { version } = JSON.parse(line) as { version?: number };
        if (version !== undefined) versions.add(version);
      } catch {
        broken.push(line.slice(0, 100));
      }
    }
    // Opened anew, the file was written at its end, while the log's lines went at stdout's own offset, over them.
    expect(broken).toEqual([]);
    expect(versions.size).toBe(200);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

test("a file a crash left without its last newline gets one before the next line", async () => {
  const dir = await tempDir();
  const file = join(dir, "updates.jsonl");
  await Bun.write(file, '{"epoch":"e","version":1,"kind":"Po');
  host = await startTestHost({ dir, sinks: [{ type: "jsonl", path: file }] });
  host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await waitFor(async () => (await Bun.file(file).text()).endsWith("\n"), 5_000, "a line");
  const lines = (await Bun.file(file).text()).split("\n");
  expect(lines[0]).toBe('{"epoch":"e","version":1,"kind":"Po');
  expect((JSON.parse(lines[1]!) as Envelope).name).toBe("a");
});

test("a file rotated under it (moved away, deleted, truncated) gets the next batch from its start, whole", async () => {
  const dir = await tempDir();
  const file = join(dir, "updates.jsonl");
  host = await startTestHost({ dir, sinks: [{ type: "jsonl", path: file }] });
  const rotations = [() => rename(file, `${file}.1`), () => rm(file), () => truncate(file, 0)];
  for (const [i, rotate] of rotations.entries()) {
    host.changes.apply("pods", "ADDED", rawPod(`before-${i}`, { node: "n1" }));
    await waitFor(
      async () => (await completeLines(file)).some((line) => line.includes(`before-${i}`)),
      5_000,
      "a line",
    );
    await rotate();
    host.changes.apply("pods", "ADDED", rawPod(`after-${i}`, { node: "n1" }));
    await waitFor(async () => (await envelopes(file)).length === 1, 5_000, "the line after the rotation");
    expect((await envelopes(file)).map((e) => e.name)).toEqual([`after-${i}`]);
  }
  expect((await envelopes(`${file}.1`)).map((e) => e.name)).toEqual(["before-0"]);
});

test("a FIFO at its path gets no line: each write refused and retried; a file made there gets them all", async () => {
  const dir = await tempDir();
  const file = join(dir, "updates.jsonl");
  // No check at a start (--check refuses it): a reader's `mkfifo` before kubemeta's first write.
  expect(Bun.spawnSync(["mkfifo", file]).exitCode).toBe(0);
  host = await startTestHost({ dir, sinks: [{ type: "jsonl", path: file, retry: { initial: "10ms", max: "50ms" } }] });
  for (const name of ["a", "b", "c"]) host.changes.apply("pods", "ADDED", rawPod(name, { node: "n1" }));
  await waitFor(() => host!.host.log.head() >= 3, 5_000, "three commits");
  const jsonl = { sink: "jsonl" };
  // Before the fix each batch went into the pipe, dropped at its close with no reader, and the lag fell to 0.
  await waitFor(
    async () =>
      ((await metric(host!.url, "kubemeta_sink_delivery_failures_total", { ...jsonl, step: "deliver" })) ?? 0) >= 2,
    5_000,
    "two refused writes",
  );
  expect(await metric(host.url, "kubemeta_sink_lag_versions", jsonl)).toBe(3);
  await rm(file);
  await waitFor(async () => (await envelopes(file)).length === 3, 5_000, "the three lines, in a file");
  expect((await envelopes(file)).map((e) => e.name)).toEqual(["a", "b", "c"]);
});

/** The file's lines that are not one JSON envelope each. */
async function tornLines(file: string): Promise<string[]> {
  const lines = (await Bun.file(file).text()).split("\n");
  return lines.filter((line, i) => {
    if (line === "" && i === lines.length - 1) return false;
    try {
      return typeof (JSON.parse(line) as Envelope).version !== "number";
    } catch {
      return true;
    }
  });
}

test("a write cut short (a full disk) is cut back: whole lines after retry and restart, none twice", async () => {
  const dir = await tempDir();
  const file = join(dir, "updates.jsonl");
  const store = startHranaServer({ path: join(dir, "store.db") });
  const count = 100;
  // 100 KiB for every file it writes (only the jsonl file: the store is the server's), as a disk that fills up;
  // SIGXFSZ ignored, so that a write past it fails with EFBIG (part way, once the limit is reached).
  const script = `trap '' XFSZ; ulimit -S -f 100; exec "$0" "$1"`;
  const child = Bun.spawn(["bash", "-c", script, process.execPath, join(import.meta.dir, "jsonl-file-host.ts")], {
    env: { ...process.env, COUNT: String(count), FILE: file, STORE_URL: store.url },
    stdout: "pipe",
    stderr: "inherit",
  });
  // Were the limit not reached, the loop below would wait for ever: ended, the output ends too.
  const deadline = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    let said = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      said += decoder.decode(chunk, { stream: true });
      // Twice: the first write that failed, and its retry.
      if ((said.match(/sink failed to deliver a batch[^\n]*EFBIG/g) ?? []).length >= 2) break;
    }
    expect(said).toContain("EFBIG");
  } finally {
    clearTimeout(deadline);
    child.kill("SIGTERM");
    await child.exited;
  }
  expect(await tornLines(file)).toEqual([]);

  try {
    host = await startTestHost({
      dir,
      extra: { store: { type: "libsql", url: store.url } },
      sinks: [{ type: "jsonl", path: file }],
    });
    await waitFor(async () => (await envelopes(file)).length >= count, 10_000, "every update in the file");
    expect(await tornLines(file)).toEqual([]);
    expect((await envelopes(file)).map((e) => e.version)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  } finally {
    await host?.stop();
    host = undefined;
    await store.stop();
  }
}, 30_000);

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/**
 * tests/jsonl-file-host.ts under umask 000, on a store of its own, appending three pods to `file`: until they are
 * there, then SIGTERM.
 */
async function appendUnderUmask0(file: string): Promise<void> {
  const storeDir = await tempDir();
  const store = startHranaServer({ path: join(storeDir, "store.db") });
  const host = join(import.meta.dir, "jsonl-file-host.ts");
  const child = Bun.spawn(["sh", "-c", 'umask 000 && exec "$0" "$1"', process.execPath, host], {
    env: { ...process.env, COUNT: "3", FILE: file, STORE_URL: store.url },
    stdout: "ignore",
    stderr: "inherit",
  });
  try {
    await waitFor(async () => (await completeLines(file)).length === 3, 20_000, "three lines");
  } finally {
    child.kill("SIGTERM");
    await exitWithin(child, 20_000).finally(async () => {
      await store.stop();
      await rm(storeDir, { recursive: true, force: true });
    });
  }
}

test("what it makes is its user's alone (0600, 0700) under umask 000; what exists keeps its mode", async () => {
  // The lines hold what http.tokens guard, as the store does (tests/store-file-modes.test.ts).
  const dir = await tempDir();
  try {
    await appendUnderUmask0(join(dir, "logs/deeper/updates.jsonl"));
    const made = ["logs", "logs/deeper", "logs/deeper/updates.jsonl"].map((path) => mode(join(dir, path)));
    expect(made).toEqual(["700", "700", "600"]);

    await mkdir(join(dir, "shared"));
    await chmod(join(dir, "shared"), 0o750);
    await Bun.write(join(dir, "shared/updates.jsonl"), "");
    await chmod(join(dir, "shared/updates.jsonl"), 0o640);
    await appendUnderUmask0(join(dir, "shared/updates.jsonl"));
    expect([mode(join(dir, "shared")), mode(join(dir, "shared/updates.jsonl"))]).toEqual(["750", "640"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);
