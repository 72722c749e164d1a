/** `${VAR}` in a config file: in YAML's flow collections as in block style, and in a mapping's keys as in values. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ConfigError, loadConfig, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";

/** A value that, were it read as YAML, would end a mapping, a list, a line: it must stay one string. */
const TRICKY = "tok: en # not-a-comment ], {x: 1}";

async function load(yaml: string, env: Record<string, string>) {
  const file = join(await tempDir(), "kubemeta.yaml");
  await Bun.write(file, yaml);
  return loadConfig(file, { env, registry: builtins });
}

/** The issues of a config that is refused, as `path: message`. */
async function issuesOf(loading: Promise<unknown>): Promise<string[]> {
  const error = await loading.then(
    () => new Error("the config was accepted"),
    (refused: unknown) => refused,
  );
  if (!(error instanceof ConfigError)) throw error;
  return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
}

test("${VAR} in a flow mapping or list reads as in block style; its value, whatever it holds, one string", async () => {
  const env = { PORT: "9090", TOKEN: "tok:en#not-a-comment],{x}", SECRET: TRICKY, LEVEL: "warn" };
  const flow = await load(
    "http: {port: ${PORT}, tokens: [${TOKEN}, $${LITERAL}-0123456789abcdef]}\n" +
      'sinks: [{type: webhook, url: "https://h/", secret: ${SECRET}}]\n',
    env,
  );
  const block = await load(
    "http:\n  port: ${PORT}\n  tokens:\n    - ${TOKEN}\n    - $${LITERAL}-0123456789abcdef\n" +
      "sinks:\n  - type: webhook\n    url: https://h/\n    secret: ${SECRET}\n",
    env,
  );
  expect([flow.http, flow.sinks[0]!.config]).toEqual([block.http, block.sinks[0]!.config]);
  expect(flow.http).toMatchObject({ port: 9090, tokens: [env.TOKEN, "${LITERAL}-0123456789abcdef"] });
  expect(flow.sinks[0]!.config).toMatchObject({ secret: TRICKY });
  // Beside a quoted one, nested, and several on a line, with text around them.
  const nested = await load(
    'log: {level: "${LEVEL}"}\nhttp: {tokens: ["${TOKEN}", x${PORT}y${PORT}-0123456789]}\n',
    env,
  );
  expect([nested.logLevel, nested.http.tokens]).toEqual(["warn", [env.TOKEN, "x9090y9090-0123456789"]]);
});

test("a flow mapping with ${VAR} is checked as any other: an unset variable, a key written twice", async () => {
  expect(await issuesOf(load("http: {port: ${PORT}}\n", {}))).toEqual([
    "http.port: environment variable PORT is not set",
  ]);
  expect(await issuesOf(load("http: {port: ${PORT}}\nhttp: {port: 1}\n", { PORT: "1" }))).toEqual([
    "http: written 2 times (lines 1, 2): only the last would count",
  ]);
  // A text that is not YAML for another reason is told where it breaks, as it is without the variable.
  const unparsable = async (port: string) =>
    (await issuesOf(load(`http: {port: ${port}}\ncluster: [unclosed\n`, { PORT: "1" }))).map((issue) =>
      issue.replace(/^: cannot parse \S+: /, ""),
    );
  expect(await unparsable("${PORT}")).toEqual(await unparsable("1"));
  expect(await unparsable("1")).toEqual([expect.stringMatching(/^YAML Parse error: .* at line 3, column 1/)]);
});

test("${VAR} in a key is replaced as in a value; one unset, or two keys made one, an error at that key", async () => {
  const webhook = (headers: string) =>
    `sinks:\n  - type: webhook\n    url: https://h/\n    secret: 0123456789abcdef\n    headers: ${headers}\n`;
  const env = { HEADER: "X-Gateway-Token", VALUE: TRICKY };
  const sinks = async (headers: string) => (await load(webhook(headers), env)).sinks[0]!.config;
  expect(await sinks("{${HEADER}: ${VALUE}}")).toMatchObject({ headers: { "X-Gateway-Token": env.VALUE } });
  expect(await sinks("\n      ${HEADER}: fixed")).toMatchObject({ headers: { "X-Gateway-Token": "fixed" } });
  expect(await issuesOf(load(webhook("{${UNSET}: v}"), env))).toEqual([
    "sinks[0].headers.${UNSET}: environment variable UNSET is not set",
  ]);
  expect(await issuesOf(load(webhook("{X-Gateway-Token: a, ${HEADER}: b}"), env))).toEqual([
    "sinks[0].headers.${HEADER}: written twice once ${} is replaced (X-Gateway-Token, ${HEADER}): " +
      "only the last would count",
  ]);
  // A key of the host's own sections too, and from an object given as it is (not a file).
  const raw = await resolveConfig(
    { "${SECTION}": { name: "eu" } },
    { baseDir: "/", env: { SECTION: "cluster" }, registry: builtins },
  );
  expect(raw.cluster).toBe("eu");
});

test("an error under a key ${VAR} replaced is named by the key as written, not by the variable's value", async () => {
  // A header's name may be the secret a gateway checks; a section's name is no secret but is named as written too.
  const env = { HEADER: "Secret-Name-1", BAD: "secret name 2", SECTION: "cluster", OTHER: "secret_3", KEY: "secret_4" };
  const yaml =
    "sinks:\n  - type: webhook\n    url: https://h/\n    secret: 0123456789abcdef\n" +
    "    headers:\n      ${HEADER}: ${UNSET}\n      ${BAD}: 5\n      nested${HEADER}: [1]\n" +
    "${SECTION}:\n  name: 5\n${OTHER}:\n  x: 1\nhttp:\n  ${KEY}: 1\n  tokens: [5]\n";
  const issues = await issuesOf(load(yaml, env));
  expect(issues).toEqual([
    "sinks[0].headers.${HEADER}: environment variable UNSET is not set",
    "${SECTION}.name: Invalid type: Expected string but received a number",
    "http.tokens[0]: Invalid type: Expected string but received a number",
    "http.${KEY}: unknown key",
    "${OTHER}: unknown key",
    expect.stringMatching(/^sinks\[0\]\.headers\.\$\{BAD\}: a header name is/),
    "sinks[0].headers.${BAD}: Invalid type: Expected string but received a number",
    "sinks[0].headers.nested${HEADER}: Invalid type: Expected string but received Array",
  ]);
  expect(issues.join("\n")).not.toContain("secret");
});

test("a ${ that no } closes is an error (the name would be the secret); $${ is a literal, closed or not", async () => {
  const env = { WEBHOOK_SECRET: "a-secret-from-the-environment" };
  const unclosed = "${ is not closed by a } (write ${NAME}, or $${ for a literal ${)";
  const webhook = "sinks:\n  - type: webhook\n    url: https://h/\n    secret: ${WEBHOOK_SECRET\n";
  expect(await issuesOf(load(webhook, env))).toEqual([`sinks[0].secret: ${unclosed}`]);
  expect(await issuesOf(load('http: {tokens: ["${WEBHOOK_SECRET}-and-${"]}\n', env))).toEqual([
    `http.tokens[0]: ${unclosed}`,
  ]);
  const literal = await load('cluster: {name: "pa$${ss-${WEBHOOK_SECRET}"}\n', env);
  expect(literal.cluster).toBe("pa${ss-a-secret-from-the-environment");
});

test("an error never quotes what a ${VAR} gave (a word from a list, a selector, a server): said as it", async () => {
  // A Secret in the wrong variable, or put where a word belongs by one who may edit the config but not read Secrets:
  // `--check` and the log must not print it.
  const env = { TOKEN: "tok:Rq83/Xz1Lm5", SHORT: "deb", SELECTOR: "app = Ns7Yh2 Bk4", PORT: "80" };
  const yaml = [
    "log: {level: ${SHORT}}",
    "http: {port: ${PORT}}",
    "sources:",
    "  - type: kubernetes",
    "    kubeconfig: ./none",
    "    streamingList: ${TOKEN}",
    '    resources: ["${TOKEN}"]',
    "    labelSelector: ${SELECTOR}",
    "    fieldSelector: x-${TOKEN}",
    "sinks:",
    '  - {type: nats, servers: ["${TOKEN}"]}',
  ].join("\n");
  const issues = await issuesOf(load(yaml, env));
  expect(issues).toEqual([
    'log.level: Invalid type: Expected ("debug" | "info" | "warn" | "error") but received "${SHORT}"',
    expect.stringMatching(/^sources\[0\]\.resources\[0\]: "\$\{TOKEN\}" is not group\/version\/resource /),
    'sources[0].labelSelector: a part of ${SELECTOR} at character 14 where "," or the end belongs',
    'sources[0].fieldSelector: "x-${TOKEN}" is not field=value, field==value or field!=value',
    'sources[0].streamingList: Invalid type: Expected ("auto" | "always" | "never") but received "${TOKEN}"',
    expect.stringMatching(/^sinks\[0\]\.servers\[0\]: "\$\{TOKEN\}" is not a NATS server: expected nats:\/\//),
  ]);
  for (const value of [env.TOKEN, "Ns7Yh2", "Bk4", '"deb"']) expect(issues.join("\n")).not.toContain(value);
  // A value quoted whole leaves the schema's words quoted beside it as they are, though they are parts of it.
  expect(await issuesOf(load("log: {level: ${LEVEL}}\n", { LEVEL: "information" }))).toEqual([
    'log.level: Invalid type: Expected ("debug" | "info" | "warn" | "error") but received "${LEVEL}"',
  ]);
});
