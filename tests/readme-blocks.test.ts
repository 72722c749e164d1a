/**
 * README.md's code blocks, as a reader copies them: each config passes `--check`'s checks (the variables and files it
 * names made up), each TypeScript block type-checks against the package as README installs it (a folder of one's
 * own, `node_modules/kubemeta` linked to the checkout, README's tsconfig; the browser's blocks with the DOM's types)
 * and the harness's example runs, the sink plugin shown is examples/sink-plugin/deletions.ts, the nats-server
 * permissions parse, the envelope has the fields kubemeta sends in their order, and no shell block reads a variable
 * it set for one command alone. A block this file does not check is in SKIPPED, with the test that does or why none.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import { checkConfig } from "../host/check-config.ts";
import { ConfigError, loadConfig } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";
import { testPki } from "../simulator/certs.ts";
import { rawPod, startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { type HranaServer, startHranaServer } from "./hrana-server.ts";
import { type Block, installCheckout, README_BLOCKS as BLOCKS, ROOT, readmeBlock as block } from "./readme-setup.ts";

const EXAMPLE_PLUGIN = join(ROOT, "examples/sink-plugin/deletions.ts");

const blocksIn = (...langs: string[]) =>
  BLOCKS.filter((block) => langs.includes(block.lang) && !(block.key in SKIPPED));

const BY_HAND = "run by hand against `--demo` (2026-12-07): output as shown";
/** The blocks this file does not check: another test does, or they need what no test here has. */
const SKIPPED: Record<string, string> = {
  "Quick start, block 1 (sh)": "tests/readme-node-engines.test.ts and tests/reliability-readme-command.test.ts",
  "Quick start, block 2 (sh)": `tests/demo.test.ts runs the demo's curl; tail ${BY_HAND}`,
  "Quick start, block 3 (sh)": "the whole suite",
  "The demo (no cluster needed), block 1 (sh)": "tests/demo.test.ts",
  "The demo (no cluster needed), block 2 (text)": "tests/demo.test.ts compares it with what the demo prints",
  "How it works, block 1 (text)": "a drawing",
  "Architecture, block 1 (text)": "tests/architecture.test.ts: the map names every folder",
  "Slim rules, block 1 (yaml)": "tests/slim-readme-example.test.ts runs it against the test API server",
  "`store`: libSQL, block 1 (sh)": "run by hand (2026-12-07); new-epoch's line: tests/reliability-store-open.test.ts",
  "`sources`: kubernetes, block 1 (json)": "tests/source-kubernetes-crd.test.ts; by hand against the simulator",
  "`sources`: kubernetes, block 2 (sh)": "tests/rbac.test.ts",
  "Run it against a real cluster, block 1 (sh)": "needs a cluster",
  "Run it against a real cluster, block 3 (sh)": "run by hand (2026-12-07); its token: the shell check here",
  "Run it against a real cluster, block 4 (sh)": "run by hand (2026-12-07) beside block 3",
  "In the cluster: one container per cluster, block 1 (sh)": "needs kubectl and a cluster",
  "High availability, block 2 (sh)": "needs kubectl and a cluster",
  "High availability, block 3 (sh)": "tests/rbac.test.ts",
  "`GET /v1/watch` — Server-Sent Events (the `sse` sink), block 1 (text)": `tests/http.test.ts; ${BY_HAND}`,
  "Replay: `<prefix>.replay`, block 1 (json)": "tests/nats-replay-protocol.test.ts; by hand over nats-server",
  "Replay: `<prefix>.replay`, block 2 (json)": "tests/nats-replay-protocol.test.ts; by hand over nats-server",
  "JetStream, block 1 (sh)": "needs the nats CLI, which this machine lacks",
  "What a request looks like, block 1 (http)": "tests/webhook-readme-receiver.test.ts checks what it signs",
  "Load it by path, block 2 (sh)": "tests/container-image.test.ts runs it as the image lays it out",
  "Load it by path, block 3 (yaml)": "tests/container-image.test.ts runs it beside block 2",
  "Follow a stream from the terminal: `kubemeta tail`, block 1 (sh)": `tests/tail.test.ts; ${BY_HAND}`,
  "Follow a stream from the terminal: `kubemeta tail`, block 2 (text)": `tests/tail.test.ts; ${BY_HAND}`,
  "Follow a stream from the terminal: `kubemeta tail`, block 3 (sh)": `tests/tail-nats.test.ts; ${BY_HAND}`,
  "Profiling, block 1 (sh)": "needs perf and a benchmark's minutes",
};
/** nats-server configuration, parsed by nats-server itself. */
const NATS_PERMISSIONS = ["Permissions, block 1 (text)", "Permissions, block 3 (text)"];
/** A NATS account's exports for consumers in other accounts, parsed by nats-server in an account beside one that imports. */
const NATS_EXPORTS = "Permissions, block 2 (text)";
const ENVELOPE = "The update envelope, block 1 (json)";
const PLUGIN = "A complete example, block 1 (ts)";
const HARNESS = "Test it, block 1 (ts)";
/** What the browser's blocks use of their page: declared, so that the rest type-checks. */
const PAGE: Record<string, string> = {
  "`GET /v1/watch` — Server-Sent Events (the `sse` sink), block 2 (js)":
    "declare const token: string;\ndeclare const cache: Map<string, unknown>;\n" +
    "declare function apply(type: string, update: unknown): void;\ndeclare function render(): void;\nexport {};\n",
  "A UI over SSE, block 1 (ts)":
    "declare const sessionToken: string;\n" +
    "declare const table: { upsert(uid: string, o: unknown): void; remove(uid: string): void };\n" +
    "declare const status: { show(text: string): void; warn(text: string): void };\n",
};

test("every block is checked here or skipped with a reason, and every skip names a block", () => {
  const keys = new Set(BLOCKS.map((block) => block.key));
  expect(Object.keys(SKIPPED).filter((key) => !keys.has(key))).toEqual([]);
  const checked = new Set(["yaml", "ts", "js"]);
  const checkedBlocks = [...NATS_PERMISSIONS, NATS_EXPORTS, ENVELOPE];
  const unchecked = BLOCKS.filter(
    ({ key, lang }) => !(key in SKIPPED || checked.has(lang) || checkedBlocks.includes(key)),
  );
  expect(unchecked.map(({ key, line }) => `README.md:${line} ${key}`)).toEqual([]);
});

let dir: string;
let libsql: HranaServer;
beforeAll(async () => {
  dir = await tempDir("kubemeta-readme-blocks-");
  libsql = startHranaServer({ path: join(dir, "remote.db"), token: "the-remote-store-token" });
  // A folder of one's own with the checkout installed in it (README, "Load it by path"), the plugin beside.
  await installCheckout(dir);
  await cp(EXAMPLE_PLUGIN, join(dir, "plugins/deletions.ts"));
});
afterAll(async () => {
  await libsql?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The errors and deprecation warnings `--check` would print for a config file (cli/main.ts). */
async function checked(file: string, env: Record<string, string>): Promise<string[]> {
  try {
    const config = await loadConfig(file, { registry: builtins, env });
    const { issues } = await checkConfig(config, createLogger({ level: "error" }));
    return [...config.warnings, ...issues.map((issue) => `${issue.path}: ${issue.message}`)];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return [...error.warnings, ...error.issues.map((issue) => `${issue.path}: ${issue.message}`)];
  }
}

test("its configs pass --check, the variables and files they name made up, and write no deprecated key", async () => {
  const env = {
    WEBHOOK_SECRET: "a-webhook-secret-of-readme-blocks",
    KUBEMETA_TOKEN: "a-kubemeta-token-of-readme-blocks",
    NATS_PASSWORD: "a-nats-password",
    LIBSQL_URL: libsql.url,
    LIBSQL_AUTH_TOKEN: "the-remote-store-token",
  };
  // The paths of a deployment's machine, made here (a CA file must hold a certificate).
  const places = [
    ["/data/", `${dir}/data/`],
    ["/var/lib/kubemeta/", `${dir}/lib/`],
    ["/var/log/kubemeta/", `${dir}/log/`],
    ["/etc/nats/ca.crt", (await testPki()).caFile],
  ] as const;
  const configs = blocksIn("yaml");
  const found: Record<string, string[]> = {};
  for (const { key, line, code } of configs) {
    const file = join(dir, `readme-line-${line}.yaml`);
    await Bun.write(
      file,
      places.reduce((text, [from, to]) => text.replaceAll(from, to), code),
    );
    found[key] = await checked(file, env);
  }
  expect(found).toEqual(Object.fromEntries(configs.map(({ key }) => [key, []])));
});

test("its TypeScript type-checks as README installs the package, the browser's with the DOM's types", async () => {
  const project = async (name: string, compilerOptions: Record<string, unknown>, blocks: Block[]) => {
    const files = [];
    for (const { key, line, code } of blocks) {
      const page = PAGE[key] ?? "";
      files.push(`readme-line-${line}.ts`);
      await Bun.write(join(dir, files.at(-1)!), `${code}${page}`);
    }
    // README, "Load it by path": the options it names for a plugin's folder, and `strict` as kubemeta's own.
    const options = { moduleResolution: "bundler", allowImportingTsExtensions: true, noEmit: true, strict: true };
    await Bun.write(join(dir, name), JSON.stringify({ compilerOptions: { ...options, ...compilerOptions }, files }));
    const tsc = Bun.spawn([process.execPath, "x", "tsc", "-p", join(dir, name)], { cwd: ROOT, stdout: "pipe" });
    return `${await tsc.stdout.text()}${(await tsc.exited) === 0 ? "" : "(failed)"}`;
  };
  const code = blocksIn("ts", "js");
  const inBrowser = ({ key }: Block) => key in PAGE;
  expect(code.filter(inBrowser).length).toBe(Object.keys(PAGE).length);
  const outputs = await Promise.all([
    project(
      "tsconfig.json",
      { types: ["bun"], lib: ["ESNext"] },
      code.filter((block) => !inBrowser(block)),
    ),
    project("tsconfig.browser.json", { types: [], lib: ["ESNext", "DOM"] }, code.filter(inBrowser)),
  ]);
  expect(outputs).toEqual(["", ""]);
}, 60_000);

test("its sink plugin is examples/sink-plugin/deletions.ts, which its own test runs", async () => {
  const example = await Bun.file(EXAMPLE_PLUGIN).text();
  expect(example.replace(/^\/\*\*[\s\S]*?\*\/\n/, "")).toBe(block(PLUGIN));
});

test("its harness example runs as written, the plugin's path filled in", async () => {
  expect(block(HARNESS)).toContain("/path/to/deletions.ts");
  const file = join(dir, "harness.ts");
  await Bun.write(file, block(HARNESS).replace("/path/to/deletions.ts", join(dir, "plugins/deletions.ts")));
  // Its `tempDir()` is left behind by the example: made under ours, it goes with it.
  const env = { ...process.env, TMPDIR: dir };
  const run = Bun.spawn([process.execPath, file], { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([run.exited, run.stderr.text()]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
}, 30_000);

/** Expects nats-server to take `config` as a valid configuration file. */
async function expectNatsConfig(config: string): Promise<void> {
  const file = join(dir, "nats.conf");
  await Bun.write(file, config);
  const server = Bun.spawn(["nats-server", "-t", "-c", file], { stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([server.exited, server.stderr.text()]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: `nats-server: configuration file ${file} is valid\n` });
}

test("its nats-server permissions are nats-server configuration", async () => {
  const users = NATS_PERMISSIONS.map((key, i) => `{ user: u${i}, password: p${i}, ${block(key)} }`);
  await expectNatsConfig(`authorization { users = [\n${users.join(",\n")}\n] }\n`);
});

test("its exports for consumers in another account are nats-server configuration", async () => {
  const prefix = "kubemeta.prod-eu";
  const imports = [
    `{ service: { account: KM, subject: "${prefix}.replay" } }`,
    `{ stream: { account: KM, subject: "${prefix}.all" } }`,
  ];
  await expectNatsConfig(
    `accounts {\n  KM { users: [{ user: k, password: k }]\n${block(NATS_EXPORTS)}\n  }\n` +
      `  AG { users: [{ user: a, password: a }], imports: [${imports.join(", ")}] }\n}\n`,
  );
});

test("its envelope has the fields an update has, in the order kubemeta writes them", async () => {
  const host = await startTestHost();
  try {
    host.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    const page = await waitFor(async () => {
      const body = (await (await fetch(`${host.url}/v1/updates`)).json()) as { items: Record<string, unknown>[] };
      return body.items[0];
    }, 5_000);
    expect(Object.keys(JSON.parse(block(ENVELOPE)))).toEqual(Object.keys(page));
  } finally {
    await host.destroy();
  }
});

/** The variables a line sets for its command alone, `A=1 B=2 command` (neither `export A=1` nor `A=1` alone). */
function setForOneCommand(line: string): string[] {
  const words = line
    .replace(/\$\([^)]*\)/g, "x")
    .trim()
    .split(/\s+/);
  const names = words.map((word) => /^(\w+)=/.exec(word)?.[1]);
  const count = names.indexOf(undefined);
  return count > 0 ? (names.slice(0, count) as string[]) : [];
}

test("no shell block reads a variable it set for one command alone", () => {
  const misread = BLOCKS.filter(({ lang }) => lang === "sh").flatMap(({ key, code }) => {
    const lines = code.split("\n");
    return lines.flatMap((line, i) =>
      setForOneCommand(line)
        .filter((name) => lines.slice(i + 1).some((later) => new RegExp(`\\$\\{?${name}\\b`).test(later)))
        .map((name) => `${key}: ${name}`),
    );
  });
  expect(misread).toEqual([]);
});
