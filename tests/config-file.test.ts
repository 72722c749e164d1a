/** The config file as it is read: of a bounded size, from whatever the path names (a pipe included). */
import { afterAll, expect, test } from "bun:test";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, MAIN, Output, SDK } from "./reliability-process.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}

/** `main.ts` with `args` in `cwd`, its stdin `stdin`; its exit code and stderr, within `timeoutMs`. */
async function run(args: string[], cwd: string, stdin: "ignore" | Blob = "ignore", timeoutMs = 15_000) {
  const proc = Bun.spawn([process.execPath, "run", MAIN, ...args], { cwd, stdin, stdout: "pipe", stderr: "pipe" });
  const stderr = new Output(proc.stderr);
  try {
    return { code: await exitWithin(proc, timeoutMs), stderr: await stderr.all() };
  } finally {
    proc.kill("SIGKILL");
  }
}

test("a path that reads without end (/dev/zero), or a file past 1 MiB, is refused at the limit", async () => {
  const dir = await scratch();
  // A store's database given as the config by mistake (tab completion), its size that of a small one.
  await Bun.write(join(dir, "kubemeta.db"), Buffer.alloc(1024 * 1024 + 1, "a"));
  for (const path of ["/dev/zero", "kubemeta.db"]) {
    for (const check of [["--check"], []]) {
      // Was read on until memory ran out: 4.8 GB in 20 s for /dev/zero.
      expect(await run([...check, "--config", path], dir)).toEqual({
        code: 1,
        stderr: `invalid config:\n  (root): ${path} holds more than 1 MiB: no config is that large\n`,
      });
    }
  }
}, 60_000);

test("a config read from a pipe (/dev/stdin, a shell's <(…)) is read as a file is", async () => {
  const dir = await scratch();
  const config = new Blob([
    "store: { type: libsql, url: 'file:./k.db' }\nsinks: [ { type: sse } ]\nhttp: { address: 127.0.0.1 }\n",
  ]);
  expect(await run(["--check", "--config", "/dev/stdin"], dir, config)).toEqual({
    code: 0,
    stderr: "kubemeta: warning: no sources: nothing is watched\n",
  });
}, 30_000);

test("a config read from a pipe names plugin modules relative to the working directory, not to /dev", async () => {
  const dir = await scratch();
  await Bun.write(
    join(dir, "plugins/audit.ts"),
    `import { defineSink, v } from ${JSON.stringify(SDK)};\n` +
      'export default defineSink({ type: "audit", description: "", schema: v.strictObject({}), ' +
      "create: () => ({ async start() {}, async stop() {} }) });\n",
  );
  const config = (type: string) =>
    new Blob([
      `store: { type: libsql, url: 'file:./k.db' }\nsinks: [{ type: ${type} }]\nhttp: { address: 127.0.0.1 }\n`,
    ]);
  // Was: `cannot load plugin module /dev/plugins/audit.ts: no such file (… relative to the config file's folder)`.
  expect(await run(["--check", "--config", "/dev/stdin"], dir, config("./plugins/audit.ts"))).toEqual({
    code: 0,
    stderr: "kubemeta: warning: no sources: nothing is watched\n",
  });
  expect(await run(["--check", "--config", "/dev/stdin"], dir, config("./plugins/audits.ts"))).toEqual({
    code: 1,
    stderr:
      `invalid config:\n  sinks[0].type: cannot load plugin module ${dir}/plugins/audits.ts: no such file (a ` +
      "relative type is relative to the working directory, as the config is read from /dev/stdin)\n",
  });
}, 30_000);

/** Whether a thread of `pid` waits to open a FIFO for a writer (Linux: its wait channel). */
async function waitsForWriter(pid: number): Promise<boolean> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  const wchan = (task: string) =>
    Bun.file(`/proc/${pid}/task/${task}/wchan`)
      .text()
      .catch(() => "");
  const channels = await Promise.all(tasks.map(wchan));
  return channels.includes("wait_for_partner");
}

test("SIGTERM while the config is read from a pipe nobody writes stops kubemeta, exit 0", async () => {
  const dir = await scratch();
  const fifo = join(dir, "kubemeta.yaml");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", fifo], { cwd: dir, stderr: "pipe" });
  const stderr = new Output(proc.stderr);
  try {
    await waitFor(() => waitsForWriter(proc.pid), 15_000, "kubemeta waiting for the config's writer");
    proc.kill("SIGTERM");
    // Was never: the signal waited for the read, which waited for a writer.
    expect(await exitWithin(proc, 5_000)).toBe(0);
    expect(await stderr.all()).toBe("kubemeta: stopped before the config was read\n");
  } finally {
    proc.kill("SIGKILL");
  }
}, 30_000);

test("a JSON config that is not JSON is told the line and column where it stops, as YAML is", async () => {
  const dir = await scratch();
  // None is JSON; most are YAML, whose parser, which JSON's place was asked of, could not say where.
  const broken: [text: string, line: number, column: number][] = [
    ['{\n  "sinks": [{"type": "sse"}, ],\n  "http": {}\n}\n', 2, 30],
    ['{\n  "cluster": {"name": "a"},\n}\n', 3, 1],
    ['{\n  // the cluster\n  "cluster": {"name": "a"}\n}\n', 2, 3],
    ["{\n  'cluster': {'name': 'a'}\n}\n", 2, 3],
    ['{\n  "http": {port: 8080}\n}\n', 2, 12],
    ['{\n  "http": {"port": 08080}\n}\n', 2, 21],
    ['{\n  "http": {"tokens": ["tab\there-0123456789abcdef"]}\n}\n', 2, 27],
    ['{"cluster": {"name": "ü😀"}} x\n', 1, 29],
    ['{\n  "sinks": [\n', 3, 1],
  ];
  const SAID = "invalid config:\n  (root): cannot parse kubemeta.json: JSON Parse error: ";
  for (const [text, line, column] of broken) {
    await Bun.write(join(dir, "kubemeta.json"), text);
    const { code, stderr } = await run(["--check", "--config", "kubemeta.json"], dir);
    const place = stderr.slice(stderr.lastIndexOf(" at line "));
    expect({ text, code, said: stderr.startsWith(SAID), place }).toEqual({
      text,
      code: 1,
      said: true,
      place: ` at line ${line}, column ${column}\n`,
    });
    expect(stderr).not.toContain("0123456789abcdef");
  }
});
