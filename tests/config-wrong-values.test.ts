/**
 * Values users write wrong, as they would from the README alone: each is one line at its path that names the fix,
 * not two lines of one mistake, nor valibot's words for a type where a config's would say what to write.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { startTestHost, tempDir } from "../testing/index.ts";
import { issuesOf } from "./config-issues.ts";
import { runMain } from "./reliability-process.ts";

const SECRET = "s3cr3t-of-32-bytes-at-least-0123456789";

/** `--check` of real main.ts on a config of `lines`, run in a temp dir: the default store is made there. */
async function check(lines: string[]) {
  const dir = await tempDir();
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(config, lines.join("\n"));
  return runMain(["--check", "--config", config], { cwd: dir });
}

test("a url written without its scheme is one line, naming the schemes to write", async () => {
  expect(
    await issuesOf({
      store: { type: "libsql", url: "kubemeta.db" },
      sinks: [
        { type: "webhook", url: "example.com/hook", secret: SECRET },
        { type: "webhook", name: "spaced", url: "http://exa mple.com/hook", secret: SECRET },
      ],
    }),
  ).toEqual([
    'store.url: unsupported store url "kubemeta.db": use file:<path>, libsql://<host>, http(s)://<host> or ' +
      "ws(s)://<host>",
    "sinks[0].url: must be an http:// or https:// URL",
    "sinks[1].url: must be a URL (a space in it, or a port out of range?)",
  ]);
});

test("one value where a list or a mapping belongs is told to write one, a mapping with its keys", async () => {
  const list =
    'Invalid type: Expected Array but received a string: write a list, even of one: [a, b], or a "- a" line each';
  expect(
    await issuesOf(
      {
        cluster: "prod",
        log: null,
        http: { tokens: "${TOKEN}" },
        sources: [{ type: "kubernetes", resources: "pods" }],
        sinks: { type: "sse" },
        slim: { kinds: "Pod" },
      },
      { TOKEN: "a-token-of-the-listener-0123456789" },
    ),
  ).toEqual([
    "cluster: Invalid type: Expected Object but received a string: write a mapping of its keys (name)",
    "log: Invalid type: Expected Object but received null: write a mapping of its keys (level)",
    'sinks: Invalid type: Expected Array but received Object: write a list, even of one: [a, b], or a "- a" line each',
    `http.tokens: ${list}`,
    "slim.kinds: Invalid type: Expected Object but received a string: write a mapping (key: value)",
    `sources[0].resources: ${list}`,
  ]);
});

test("a negative duration, as a string or milliseconds, is said to be negative, not of the wrong form", async () => {
  const negative = 'must not be negative: write a duration such as "500ms", "10s", "5m", "24h" or "7d"';
  expect(
    await issuesOf(
      {
        shutdownTimeout: "-5s",
        store: { type: "libsql", retention: { maxAge: -1 } },
        sinks: [{ type: "sse", heartbeat: "${HEARTBEAT}" }],
      },
      { HEARTBEAT: " -15s" },
    ),
  ).toEqual([`store.retention.maxAge: ${negative}`, `shutdownTimeout: ${negative}`, `sinks[0].heartbeat: ${negative}`]);
  // A form it does not take is told the forms.
  expect(await issuesOf({ shutdownTimeout: "5 min" })).toEqual([
    'shutdownTimeout: expected a duration such as "500ms", "10s", "5m", "24h" or "7d"',
  ]);
});

test("http.address written as clients reach it, with its port or as a URL, is told where the port goes", async () => {
  const expected = "http.address: expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name of this machine";
  const said = async (address: string) => issuesOf({ http: { address } });
  const withPort = ", without its port: write the port as http.port (0.0.0.0:8080 is address: 0.0.0.0, port: 8080)";
  for (const address of ["0.0.0.0:8080", "[::]:8080", "localhost:8080"])
    expect([address, await said(address)]).toEqual([address, [`${expected}${withPort}`]]);
  expect(await said("https://kubemeta.example:8443")).toEqual([
    `${expected}, not a URL: the port is http.port, TLS http.tls`,
  ]);
  // Neither for what is no address at all, nor for IPv6's colons.
  expect(await said("my host")).toEqual([expected]);
  expect(await said("::1")).toEqual([]);
});

test("a file kubemeta creates named from ~ is refused, not made under a folder named ~", async () => {
  // An operator upgrading from a kubemeta that took it is told where its file is, and how to keep it.
  const tilde = (here: string, home: string) =>
    `starts with ~, which only a shell expands: here it is ${here} in the working directory, where an earlier ` +
    `start may have made it; write the whole path, or ${home}/… (to keep what it made: move it there, or write ${here})`;
  expect(
    await issuesOf({
      store: { type: "libsql", url: "file:~/kubemeta.db" },
      sinks: [
        { type: "jsonl", path: "~/updates.jsonl" },
        { type: "jsonl", name: "elsewhere", path: "~kubemeta/updates.jsonl" },
        { type: "jsonl", name: "tilde-within", path: "./~x/updates.jsonl" },
      ],
    }),
  ).toEqual([
    `store.url: a file: url's path ${tilde("file:./~/kubemeta.db", "file:${HOME}")}`,
    `sinks[0].path: ${tilde("./~/updates.jsonl", "${HOME}")}`,
    `sinks[1].path: ${tilde("./~kubemeta/updates.jsonl", "${HOME}")}`,
  ]);
  // What it says to write is taken: ${HOME} is the environment's.
  const home = { HOME: "/home/kubemeta" };
  const written = {
    store: { type: "libsql", url: "file:${HOME}/k.db" },
    sinks: [{ type: "jsonl", path: "${HOME}/u" }],
  };
  expect(await issuesOf(written, home)).toEqual([]);
  const kept = { store: { type: "libsql", url: "file:./~/kubemeta.db" }, sinks: [{ type: "jsonl", path: "./~/u" }] };
  expect(await issuesOf(kept)).toEqual([]);
});

test("a file kubemeta reads named from ~ is said to be from ~, not only not found", async () => {
  const checked = await check([
    "http: { address: 127.0.0.1, tls: { cert: ~/tls.crt, key: ./missing.key } }",
    "sources: [{ type: kubernetes, kubeconfig: ~kubemeta/config }]",
    "sinks:",
    "  - { type: nats, servers: ['nats://127.0.0.1:4222'], credsFile: ~/nats.creds, tls: { caFile: ~/ca.crt } }",
  ]);
  const tilde = (path: string) =>
    `the path starts with ~, which only a shell expands: here it is ./${path} in the working directory; ` +
    "write the whole path, or ${HOME}/…";
  expect(checked.code).toBe(1);
  // A path not from ~ is only not found, as before.
  expect(checked.stderr.trimEnd().split("\n")).toEqual([
    "invalid config:",
    `  http.tls.cert: file not found: ${tilde("~/tls.crt")}`,
    "  http.tls.key: file not found (paths are relative to the working directory)",
    `  sources[0]: cannot load kubeconfig ~kubemeta/config: ENOENT; ${tilde("~kubemeta/config")}`,
    `  sinks[0]: cannot read tls.caFile ~/ca.crt: ENOENT; ${tilde("~/ca.crt")}; cannot read credsFile ~/nats.creds: ` +
      `ENOENT; ${tilde("~/nats.creds")}`,
  ]);
});

test("a word from a list in another case or misspelt is told the one it likely is, a variable unquoted", async () => {
  const levels = 'Invalid type: Expected ("debug" | "info" | "warn" | "error") but received';
  expect(
    await issuesOf(
      {
        log: { level: "INFO" },
        sources: [{ type: "kubernetes", streamingList: "alwyas" }],
        sinks: [{ type: "webhook", url: "http://127.0.0.1:9/", secret: SECRET, on4xx: "${ON_4XX}" }],
      },
      { ON_4XX: "Skip" },
    ),
  ).toEqual([
    `log.level: ${levels} "INFO"; did you mean "info"?`,
    'sources[0].streamingList: Invalid type: Expected ("auto" | "always" | "never") but received "alwyas"; did you ' +
      'mean "always"?',
    'sinks[0].on4xx: Invalid type: Expected ("retry" | "skip") but received "${ON_4XX}"; did you mean "skip"?',
  ]);
  // A word near none is told the list alone.
  expect(await issuesOf({ log: { level: "verbose" } })).toEqual([`log.level: ${levels} "verbose"`]);
});

test("a built-in type in another case or misspelt is told the one it likely is", async () => {
  const list = "(built-in: sse, nats, webhook, jsonl; or a path to a plugin module)";
  expect(
    await issuesOf({
      store: { type: "LibSQL" },
      sinks: [{ type: "SSE" }, { type: "webhok" }, { type: "kafka" }],
    }),
  ).toEqual([
    'store.type: unknown store type "LibSQL"; did you mean "libsql"? (built-in: libsql; or a path to a plugin module)',
    `sinks[0].type: unknown sink type "SSE"; did you mean "sse"? ${list}`,
    `sinks[1].type: unknown sink type "webhok"; did you mean "webhook"? ${list}`,
    `sinks[2].type: unknown sink type "kafka" ${list}`,
  ]);
});

test("--check warns of a duration written as a bare number under a second, likely meant as seconds", async () => {
  const checked = await check([
    "shutdownTimeout: 30",
    "http: { address: 127.0.0.1 }",
    "store: { type: libsql, retention: { maxAge: 0, interval: 1000 } }",
    "sources: [{ type: kubernetes, inactivityTimeout: 90, kubeconfig: ./missing }]",
    "sinks: [{ type: sse, heartbeat: 15 }, { type: jsonl, batch: { linger: 5ms } }]",
  ]);
  const warning = (path: string, n: number) =>
    `kubemeta: warning: ${path}: ${n} is ${n} ms, as a bare number is; write "${n}ms" to say so, or "${n}s" if ` +
    "seconds were meant\n";
  // Said beside the errors, as a deprecated key is; 0 (none in every unit), 1000 and a unit written are not.
  expect(checked.code).toBe(1);
  expect(checked.stderr).toStartWith(
    warning("shutdownTimeout", 30) +
      warning("sources[0].inactivityTimeout", 90) +
      warning("sinks[0].heartbeat", 15) +
      "invalid config:\n  sources[0]: cannot load kubeconfig",
  );
});

test("a start logs each duration written as a bare number under a second, once, as --check warns of it", async () => {
  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  const host = await startTestHost({ logger, sinks: [{ type: "sse", heartbeat: 15 }], retention: { interval: 500 } });
  await host.destroy();
  const said = (path: string, n: number) =>
    `${path}: ${n} is ${n} ms, as a bare number is; write "${n}ms" to say so, or "${n}s" if seconds were meant`;
  expect(logged.filter((line) => line.level === "warn" && String(line.msg).includes("bare number"))).toEqual([
    expect.objectContaining({ msg: said("store.retention.interval", 500) }),
    expect.objectContaining({ msg: said("sinks[0].heartbeat", 15) }),
  ]);
});
