/** The CLI's --check and its start-up errors: what an operator sees before anything runs (exit codes, one line). */
import { describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { exitWithin, MAIN, Output, runMain } from "./reliability-process.ts";

describe("main.ts --check", () => {
  async function check(yaml: string) {
    const dir = await tempDir();
    await Bun.write(join(dir, "kubemeta.yaml"), yaml);
    // The check creates the default store, ./data/kubemeta.db: in the temp dir, not in the repository.
    return runMain(["--check", "--config", join(dir, "kubemeta.yaml")], { cwd: dir });
  }

  test("a valid config exits 0", async () => {
    const result = await check("cluster:\n  name: dev\nsources:\n  - type: kubernetes\n");
    expect(result).toMatchObject({ code: 0, stdout: "config is valid\n" });
  });

  test("an empty config (no sources, no sinks) is valid, a warning for each from --check and at start", async () => {
    // Lists written empty (their entries commented out, a template's nil) are none, as `[]` is.
    const written = ["sources: []\nsinks: []\n", "sources:\nsinks:\n  # - type: sse\n", "sources: ~\nsinks: null\n"];
    const warnings = ["no sources: nothing is watched", "no sinks: nothing is delivered (no SSE, NATS, webhook)"];
    // And of its listener, as a start warns: the defaults are 0.0.0.0 and no tokens.
    const open =
      "http has no tokens on a non-loopback address: anyone who reaches the port reads the cluster (0.0.0.0); " +
      "set http.tokens, or http.address: 127.0.0.1";
    for (const yaml of ["", "{}\n", ...written]) {
      const result = await check(yaml);
      expect({ yaml, ...result }).toEqual({
        yaml,
        code: 0,
        stdout: "config is valid\n",
        stderr: [...warnings, open].map((warning) => `kubemeta: warning: ${warning}\n`).join(""),
      });
    }
    // One missing is said alone.
    expect((await check("sinks: [{ type: sse }]\nhttp: { address: 127.0.0.1 }\n")).stderr).toBe(
      `kubemeta: warning: ${warnings[0]}\n`,
    );
    const cwd = await tempDir();
    await Bun.write(join(cwd, "kubemeta.yaml"), "");
    const child = Bun.spawn([process.execPath, "run", MAIN, "--port", "0"], { cwd, stdout: "pipe", stderr: "pipe" });
    const stdout = new Output(child.stdout);
    try {
      // Logged once started, the second last.
      await stdout.waitFor(/"msg":"no sinks: /, 20_000);
      expect(warnings.map((warning) => stdout.lines(warning).map(({ level }) => level))).toEqual([["warn"], ["warn"]]);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exitWithin(child, 20_000)).toBe(0);
  }, 60_000);

  test("a kubeconfig a source names must load: each that does not is a config error; the store checked", async () => {
    const dir = await tempDir();
    const kubeconfig = [
      "apiVersion: v1",
      "kind: Config",
      "current-context: main",
      "clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]",
      "contexts: [{ name: main, context: { cluster: c, user: u } }]",
      "users: [{ name: u, user: { token: t } }]",
    ].join("\n");
    await Bun.write(join(dir, "good.yaml"), kubeconfig);
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        "sources:",
        // Each its own resource: one watch in two sources is refused whatever their kubeconfigs (config-entries).
        "  - { type: kubernetes, name: a, kubeconfig: ./missing.yaml, resources: [pods] }",
        "  - { type: kubernetes, name: b, kubeconfig: ./good.yaml, context: nope, resources: [nodes] }",
        "  - { type: kubernetes, name: c, kubeconfig: ./good.yaml, resources: [namespaces] }",
        "  - { type: kubernetes, name: d, resources: [services] }",
        // A context names no in-cluster config: it is looked for in the kubeconfig a start would read (KUBECONFIG).
        "  - { type: kubernetes, name: e, context: nope, resources: [jobs] }",
      ].join("\n"),
    );
    // Relative to the working directory, as every path but a plugin module's.
    const env = { KUBECONFIG: join(dir, "good.yaml") };
    const result = await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir, env });
    // As a typo is said: on stderr, under "invalid config:", each at its path; no log line.
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
    const [heading, ...issues] = result.stderr.trimEnd().split("\n");
    expect(heading).toBe("invalid config:");
    expect(issues).toEqual([
      expect.stringMatching(/^ {2}sources\[0\]: cannot load kubeconfig \.\/missing\.yaml/),
      expect.stringMatching(/^ {2}sources\[1\]: .*has no context "nope" \(contexts: main\)/),
      expect.stringMatching(/^ {2}sources\[4\]: kubeconfig KUBECONFIG=.*has no context "nope" \(contexts: main\)/),
    ]);
    expect(await Bun.file(join(dir, "data", "kubemeta.db")).exists()).toBe(true);
  });

  test("a plugin's own check that fails is a config error at its entry, as a store that cannot open is", async () => {
    const dir = await tempDir();
    const sdk = join(import.meta.dir, "..", "sdk", "index.ts");
    const sink = (type: string, check: string) =>
      [
        `import { defineSink, v } from ${JSON.stringify(sdk)};`,
        "export default defineSink({",
        `  type: "${type}", description: "a sink of the test's", schema: v.strictObject({}),`,
        `  check() { ${check} },`,
        "  create() { return { async start() {}, async stop() {} }; },",
        "});",
      ].join("\n");
    await Bun.write(join(dir, "picky.ts"), sink("picky", "throw new Error('the picky sink refuses');"));
    // A check that never settles is given up on, as a start that hangs is: --check ends, and says which.
    await Bun.write(join(dir, "stuck.ts"), sink("stuck", "return new Promise(() => {});"));
    // What a plugin in JavaScript may throw: said as it is, not `[object Object]` or an empty line.
    await Bun.write(join(dir, "plain.ts"), sink("plain", "throw { reason: 'quota', left: 0 };"));
    await Bun.write(join(dir, "mute.ts"), sink("mute", "throw new RangeError('');"));
    // A file where the store's directory belongs: the store's failure is said beside the others, at `store`.
    await Bun.write(join(dir, "data"), "a file");
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      "sinks:\n  - type: sse\n  - type: ./picky.ts\n  - type: ./stuck.ts\n  - type: ./plain.ts\n  - type: ./mute.ts\n",
    );
    const result = await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir });
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
    expect(result.stderr).toBe(
      "invalid config:\n  sinks[1]: the picky sink refuses\n  sinks[2]: its check did not finish within 10s\n" +
        '  sinks[3]: {"reason":"quota","left":0}\n  sinks[4]: RangeError, with no message\n' +
        "  store: cannot create the directory of ./data/kubemeta.db: a file is in the way\n",
    );
  }, 30_000);

  test("a schema error hides none of the checks of the entries sound on their own: one --check says all", async () => {
    const dir = await tempDir();
    // Where the store's directory belongs: the store is checked too, beside the errors of its schema's neighbours.
    await Bun.write(join(dir, "data"), "a file");
    const entries = [
      "sources:",
      "  - { type: kubernetes, kubeconfig: ./missing.yaml }",
      // An entry with errors of its own is checked once they are fixed: its kubeconfig is not said yet.
      "  - { type: kubernetes, name: b, kubeconfig: ./missing.yaml, namespce: x }",
      "sinks:",
      "  - { type: sse, bogus: 1 }",
    ];
    const checks = [
      "  sources[0]: cannot load kubeconfig ./missing.yaml: ENOENT",
      "  store: cannot create the directory of ./data/kubemeta.db: a file is in the way",
    ];
    const keys = ['  sources[1].namespce: unknown key; did you mean "namespace"?', "  sinks[0].bogus: unknown key"];
    // An error in a plugin's entry, and one in the host's own sections beside it (the two ways a config is read).
    for (const [yaml, schema] of [
      [entries, keys],
      [
        ["log: { level: loud }", ...entries],
        [expect.stringMatching(/^ {2}log\.level: /), ...keys],
      ],
    ] as const) {
      await Bun.write(join(dir, "kubemeta.yaml"), yaml.join("\n"));
      const result = await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir });
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
      expect(result.stderr.trimEnd().split("\n")).toEqual(["invalid config:", ...schema, ...checks]);
    }
  }, 30_000);

  test("without --config, a directory named kubemeta.yaml, or a link to nothing, is an error", async () => {
    const directory = await tempDir();
    await mkdir(join(directory, "kubemeta.yaml"));
    const dangling = await tempDir();
    await symlink("elsewhere.yaml", join(dangling, "kubemeta.yaml"));
    for (const args of [["--check"], ["rbac"]]) {
      expect(await runMain(args, { cwd: directory })).toMatchObject({
        code: 1,
        stderr: "invalid config:\n  (root): kubemeta.yaml is a directory, not a config file\n",
      });
      expect(await runMain(args, { cwd: dangling })).toMatchObject({
        code: 1,
        stderr: "invalid config:\n  (root): kubemeta.yaml is a symbolic link to elsewhere.yaml, which is not there\n",
      });
    }
  }, 30_000);

  test("two jsonl sinks on one file by way of a symbolic link are refused, the file made yet or not", async () => {
    const dir = realpathSync(await tempDir());
    await mkdir(join(dir, "logs"));
    await symlink("logs", join(dir, "current"));
    await symlink("logs/updates.jsonl", join(dir, "updates.jsonl"));
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./k.db' }",
        "sinks:",
        "  - { type: jsonl, name: a, path: logs/updates.jsonl }",
        "  - { type: jsonl, name: b, path: current/updates.jsonl }",
        `  - { type: jsonl, name: c, path: ${join(dir, "updates.jsonl")} }`,
        "  - { type: jsonl, name: d, path: current/other.jsonl }",
      ].join("\n"),
    );
    const file = join(dir, "logs", "updates.jsonl");
    const refused = (entry: number) =>
      `  sinks[${entry}]: the file ${file} is claimed by sinks[0] already: a config holds one such entry`;
    for (const made of [false, true]) {
      if (made) await Bun.write(file, "");
      expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
        code: 1,
        stderr: ["invalid config:", refused(1), refused(2), ""].join("\n"),
      });
    }
  }, 30_000);

  test("a jsonl path no file can be at is a config error; one whose directory is not made yet is not", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "logs"));
    await Bun.write(join(dir, "notes"), "");
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./k.db' }",
        "sinks:",
        "  - { type: jsonl, name: a, path: logs }",
        "  - { type: jsonl, name: b, path: notes/deeper/updates.jsonl }",
        "  - { type: jsonl, name: c, path: later/updates.jsonl }",
        "  - { type: jsonl, name: d, path: logs/updates.jsonl }",
      ].join("\n"),
    );
    expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
      code: 1,
      stderr: [
        "invalid config:",
        "  sinks[0]: logs is a directory, not a file to append to",
        "  sinks[1]: notes/deeper/updates.jsonl cannot be made: notes is a file, not a directory",
        "",
      ].join("\n"),
    });
    // The check makes nothing: the first write does.
    expect(await Bun.file(join(dir, "later")).exists()).toBe(false);
  }, 30_000);

  test("a jsonl path that is a FIFO is a config error; kubemeta's own stderr, a pipe too, is not", async () => {
    const dir = await tempDir();
    expect(Bun.spawnSync(["mkfifo", join(dir, "updates.pipe")]).exitCode).toBe(0);
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./k.db' }",
        "sinks:",
        "  - { type: jsonl, name: a, path: updates.pipe }",
        "  - { type: jsonl, name: b, path: /dev/stderr }",
      ].join("\n"),
    );
    // runMain's stderr is a pipe: /dev/stderr names it, held open by the process for good.
    expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
      code: 1,
      stderr: [
        "invalid config:",
        "  sinks[0]: updates.pipe is a FIFO (a named pipe), not a file to append to: its reader would see the end " +
          "after each batch, and the next ones would be lost; write path: - and pipe kubemeta's stdout to it",
        "",
      ].join("\n"),
    });
  }, 30_000);

  test("a jsonl path spelled as a directory (a last / . or ..) is a config error at --check and at start", async () => {
    const dir = await tempDir();
    const paths = ["out/", ".", "out/..", "./out/."];
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        "store: { type: libsql, url: 'file:./k.db' }",
        "sinks:",
        ...paths.map((path, i) => `  - { type: jsonl, name: s${i}, path: "${path}" }`),
      ].join("\n"),
    );
    const said = paths.map(
      (_, i) => `  sinks[${i}].path: names a directory (it ends in /, . or ..): name a file to append to`,
    );
    for (const args of [["--check"], []]) {
      expect(await runMain([...args, "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
        code: 1,
        stderr: ["invalid config:", ...said, ""].join("\n"),
      });
    }
    // Refused before a write could make the directory and fail on it at every retry.
    expect(await Bun.file(join(dir, "out")).exists()).toBe(false);
  }, 30_000);

  test("a jsonl path holding a NUL character is a config error at --check and at start", async () => {
    const dir = await tempDir();
    // YAML's "\0" and JSON's "\u0000" write one; no file is named so, and each write of it failed, retried for ever.
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      "store: { type: libsql, url: 'file:./k.db' }\nsinks: [{ type: jsonl, path: \"out\\0.jsonl\" }]\n",
    );
    for (const args of [["--check"], []]) {
      expect(await runMain([...args, "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
        code: 1,
        stderr: "invalid config:\n  sinks[0].path: holds a NUL character, which no file name can\n",
      });
    }
  }, 30_000);

  test("a config file that cannot be read is said as one, not a crash with a stack trace", async () => {
    // Reading /proc/self/mem from its start fails (EIO) for root too, where a file without read permission would not.
    for (const args of [
      ["--check", "--config", "/proc/self/mem"],
      ["--config", "/proc/self/mem"],
    ]) {
      expect(await runMain(args, { cwd: await tempDir() })).toMatchObject({
        code: 1,
        stderr: "invalid config:\n  (root): cannot read /proc/self/mem: EIO\n",
      });
    }
  }, 30_000);

  test("the example config in examples/ is valid", async () => {
    const example = join(import.meta.dir, "..", "examples/kubemeta.yaml");
    const result = await runMain(["--check", "--config", example], {
      cwd: await tempDir(),
      env: { WEBHOOK_SECRET: "a-secret-for-the-check" },
    });
    expect(result.code).toBe(0);
  });

  test("a typo exits 1 and names the path", async () => {
    const result = await check("cluster:\n  name: dev\nsources:\n  - type: kubernetes\n    namespce: default\n");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("sources[0].namespce");
  });

  test("a boolean written as YAML 1.1 wrote it (no, on), or as a number, says what to write at its path", async () => {
    const result = await check(
      [
        "ha: { enabled: no }",
        "sinks:",
        "  - { type: nats, servers: ['nats://127.0.0.1:4222'], replay: { enabled: on }, tls: { handshakeFirst: 1 } }",
      ].join("\n"),
    );
    const yaml11 = (word: string, meant: boolean) =>
      `Invalid type: Expected boolean but received a string: write ${meant} ("${word}" meant ${meant} in YAML 1.1, ` +
      "not in YAML 1.2, which kubemeta reads)";
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "invalid config:",
      `  ha.enabled: ${yaml11("no", false)}`,
      "  sinks[0].tls.handshakeFirst: Invalid type: Expected boolean but received 1: write true or false",
      `  sinks[0].replay.enabled: ${yaml11("on", true)}`,
    ]);
  });

  test("bad arguments exit 2 with one line saying what is wrong, not a stack trace", async () => {
    const cases: [string[], string][] = [
      [["--chekc"], "kubemeta: Unknown option '--chekc' (see --help)"],
      [["rbac", "--bogus"], "kubemeta: Unknown option '--bogus' (see --help)"],
      [["--port", "http"], 'kubemeta: --port: expected a port number (0-65535), got "http" (see --help)'],
      // `--config "$CONFIG"` with the variable unset: the default config would serve something else, unasked.
      ...[["--config", ""], ["--config="], ["--check", "--config", ""]].map((args): [string[], string] => [
        args,
        "kubemeta: --config: expected a file, got an empty value (see --help)",
      ]),
      [
        ["--port", "-1"],
        "kubemeta: Option '--port' argument is ambiguous. Did you forget to specify the option argument for " +
          "'--port'? To specify an option argument starting with a dash use '--port=-XYZ'. (see --help)",
      ],
      // parseArgs keeps the last one: the other file or port would be dropped unsaid. The value is not echoed.
      [
        ["--config", "a.yaml", "--config=b.yaml"],
        "kubemeta: --config: given more than once; give it once (see --help)",
      ],
      [["--port", "1", "--port", "2"], "kubemeta: --port: given more than once; give it once (see --help)"],
      [
        ["rbac", "--config", "a.yaml", "--config", "a.yaml"],
        "kubemeta: --config: given more than once; give it once (see --help)",
      ],
      [
        ["--demo", "--config", "kubemeta.yaml"],
        "kubemeta: --demo runs its own cluster and config: it takes --port, not --config or --check (see --help)",
      ],
      ...[["--demo"], ["--check"], ["--port", "0"]].map((options): [string[], string] => [
        ["rbac", ...options],
        "kubemeta: rbac prints the roles of a config: it takes --config alone (see --help)",
      ]),
    ];
    const cwd = await tempDir();
    for (const [args, line] of cases)
      expect(await runMain(args, { cwd })).toMatchObject({ code: 2, stderr: `${line}\n` });
  }, 30_000);

  test("--demo that cannot start exits 1 with one line: its port taken, its data dir a file", async () => {
    const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    try {
      const result = await runMain(["--demo", "--port", String(taken.port)], { cwd: await tempDir() });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe("");
      expect(result.stdout.trim().split("\n")).toEqual([expect.stringContaining('"msg":"http cannot listen"')]);
    } finally {
      taken.stop(true);
    }
    const cwd = await tempDir();
    await Bun.write(join(cwd, "data"), "a file where the demo's data dir would go");
    const result = await runMain(["--demo", "--port", "0"], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^kubemeta: the demo cannot start: [^\n]*data\/demo[^\n]*\n$/);
  }, 30_000);
});
