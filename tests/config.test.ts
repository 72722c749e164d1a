/**
 * The declarative config: validation with paths, env interpolation, files (the plugin entries as a whole:
 * config-entries.test.ts; --check: config-check.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type ConfigError, loadConfig, resolveConfig } from "../host/config.ts";
import { tempDir } from "../testing/index.ts";
import { issuesOf } from "./config-issues.ts";
import { builtins } from "../plugins/index.ts";

describe("config", () => {
  test("an empty config is valid and gets the documented defaults", async () => {
    const config = await resolveConfig({}, { baseDir: "/", registry: builtins });
    expect(config.cluster).toBe("default");
    expect(config.store.declaration.type).toBe("libsql");
    expect(config.store.retention).toEqual({ maxAgeMs: 86_400_000, maxUpdates: 1_000_000 });
    expect(config.http.port).toBe(8080);
    expect(config.shutdownTimeoutMs).toBe(15_000);
  });

  test("a duration waited for is at most 596h (a longer timer fires at once); an age may be longer", async () => {
    expect(
      await issuesOf({
        shutdownTimeout: "25d",
        store: { type: "libsql", retention: { interval: "30d", maxAge: "90d" } },
        sinks: [{ type: "sse", heartbeat: "30d" }],
      }),
    ).toEqual([
      "store.retention.interval: must be at most 596h (2^31-1 ms: no timer waits longer)",
      "shutdownTimeout: must be at most 596h (2^31-1 ms: no timer waits longer)",
      "sinks[0].heartbeat: must be at most 596h (2^31-1 ms: no timer waits longer)",
    ]);
    const config = await resolveConfig(
      { shutdownTimeout: "24d", store: { type: "libsql", retention: { maxAge: "90d" } } },
      { baseDir: "/", registry: builtins },
    );
    expect(config.shutdownTimeoutMs).toBe(24 * 86_400_000);
    expect(config.store.retention.maxAgeMs).toBe(90 * 86_400_000);
  });

  test("unknown keys are errors that name their path and the known key meant, never the value", async () => {
    expect(await issuesOf({ clster: {} })).toEqual(['clster: unknown key; did you mean "cluster"?']);
    expect(await issuesOf({ cluster: { nmae: "x" } })).toEqual(['cluster.nmae: unknown key; did you mean "name"?']);
    // A case difference, a key in a record's values, one too far from any (or too short to tell) named alone.
    const issues = await issuesOf({
      Cluster: {},
      slim: { kinds: { Pod: { kep: [] } } },
      ha: { id: "secret-1", lease: { secret_2: "secret-3" } },
    });
    expect(issues.join("\n")).not.toContain("secret-");
    expect(issues).toEqual([
      'slim.kinds.Pod.kep: unknown key; did you mean "keep"?',
      "ha.lease.secret_2: unknown key",
      "ha.id: unknown key",
      'Cluster: unknown key; did you mean "cluster"?',
    ]);
    expect(await issuesOf({ store: { type: "libsql", retention: { maxAge: "5 days" } } })).toEqual([
      expect.stringMatching(/^store\.retention\.maxAge: expected a duration/),
    ]);
    expect(await issuesOf({ sources: [{ type: "kubernetes", resoures: ["pods"] }] })).toEqual([
      expect.stringMatching(/^sources\[0\]\.resoures: /),
    ]);
  });

  test("every unknown key of an object is named, in the host's sections and in a plugin's", async () => {
    const issues = await issuesOf({
      clster: {},
      lgo: {},
      http: { prot: 1, adress: "x" },
      sources: [{ type: "kubernetes", namespce: "a", pageSzie: 5, resources: ["pods"] }],
    });
    for (const path of ["clster", "lgo", "http.prot", "http.adress", "sources[0].namespce", "sources[0].pageSzie"])
      expect(issues).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, "\\$&")}: `)));
    expect(issues).toHaveLength(6);
  });

  test("an error in the host's sections hides no plugin's error", async () => {
    const issues = await issuesOf({
      cluster: { name: 3 },
      store: { type: "libsql", url: "ftp://x" },
      sources: [{ type: "kubernetes", pageSize: 0 }],
      sinks: [{ type: "sse", maxStreams: -1 }],
    });
    for (const path of ["cluster.name", "store.url", "sources[0].pageSize", "sinks[0].maxStreams"])
      expect(issues).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, "\\$&")}: `)));
    expect(issues).toHaveLength(4);
  });

  test("an error in the host's sections hides no check across entries: names, claims, a shared store", async () => {
    const issues = await issuesOf({
      http: { prt: 1 },
      store: { type: "libsql", url: "file:./k.db" },
      ha: { enabled: true },
      sinks: [{ type: "sse" }, { type: "sse" }],
    });
    expect(issues).toEqual([
      expect.stringMatching(/^http\.prt: /),
      'sinks[1].name: "sse" is used twice; give each entry its own name',
      "sinks[1]: the route GET /v1/watch is claimed by sinks[0] already: a config holds one such entry",
      expect.stringMatching(/^ha\.enabled: replicas need a store they all reach: file:\.\/k\.db /),
    ]);
  });

  test("a bad entry in a list hides none of the other entries' errors", async () => {
    const issues = await issuesOf({
      http: { port: "x" },
      sinks: [
        { type: "sse", name: "bad name!" },
        { type: "nats", servers: 5 },
      ],
      sources: [{ type: "kubernetes", name: "" }, { type: "kubernetes", pageSize: 0 }, "not an entry"],
    });
    for (const path of ["http.port", "sinks[0].name", "sinks[1].servers", "sources[0].name", "sources[1].pageSize"])
      expect(issues).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, "\\$&")}: `)));
    expect(issues).toContainEqual(expect.stringMatching(/^sources\[2\]: /));
    expect(issues).toHaveLength(6);
  });

  test("a backoff whose first delay is longer than its longest is refused, wherever it is", async () => {
    const issues = await issuesOf({
      sources: [{ type: "kubernetes", backoff: { initial: "1m" }, discovery: { initial: "40s", max: "30s" } }],
      sinks: [
        { type: "nats", servers: "nats://n", reconnect: { initial: "20s", max: "1s" }, retry: { max: "50ms" } },
        { type: "jsonl", retry: { initial: "2m" } },
        // The webhook's old keys for `retry`, as they stand for the new ones (its max by default 5m).
        { type: "webhook", name: "a", url: "http://r/", secret: "0123456789abcdef", backoff: { initial: "10m" } },
        {
          type: "webhook",
          name: "b",
          url: "http://r/",
          secret: "0123456789abcdef",
          backoff: { initial: "10s", max: "1s" },
        },
      ],
    });
    const paths = ["sinks[0].reconnect", "sinks[0].retry", "sinks[1].retry", "sinks[2].backoff", "sinks[3].backoff"];
    expect(issues.toSorted()).toEqual(
      [...paths, "sources[0].backoff", "sources[0].discovery"].map(
        (path) => `${path}: initial must not be longer than max`,
      ),
    );
  });

  test("batch.size is at most 10,000 in each sink on consume, old batchSize too: a batch is held whole", async () => {
    const most = { size: 10_000, linger: "1s" };
    const sinks = [
      { type: "jsonl", name: "a", path: "a.jsonl", batch: { size: 1e15, linger: "10s" } },
      { type: "jsonl", name: "b", path: "b.jsonl", batch: most },
      { type: "nats", name: "c", servers: "nats://n", batch: { size: 10_001 } },
      { type: "nats", name: "d", servers: "nats://n", batchSize: 1e12 },
      { type: "nats", name: "e", servers: "nats://n", batch: most },
      { type: "webhook", name: "f", url: "http://r/", secret: "0123456789abcdef", batch: { size: 10_001 } },
    ];
    expect(await issuesOf({ sinks })).toEqual(
      ["sinks[0].batch.size", "sinks[2].batch.size", "sinks[3].batchSize", "sinks[5].batch.size"].map(
        (path) => `${path}: must be at most 10000`,
      ),
    );
  });

  test("a timeout, period or first delay of 0 (a loop that spins, a request never in time) is refused", async () => {
    const issues = await issuesOf({
      sources: [{ type: "kubernetes", backoff: { initial: 0 }, discovery: { initial: "0s" }, inactivityTimeout: 0 }],
      sinks: [
        { type: "nats", servers: "nats://n", reconnect: { initial: 0 }, connectTimeout: 0, pingInterval: "0ms" },
        { type: "webhook", url: "http://r/", secret: "0123456789abcdef", timeout: 0, retry: { initial: 0 } },
        { type: "webhook", name: "old", url: "http://r/", secret: "0123456789abcdef", backoff: { initial: 0 } },
        { type: "jsonl", retry: { initial: "0s", max: "0s" } },
      ],
    });
    expect(issues.toSorted()).toEqual(
      [
        "sinks[0].connectTimeout",
        "sinks[0].pingInterval",
        "sinks[0].reconnect.initial",
        "sinks[1].retry.initial",
        "sinks[1].timeout",
        "sinks[2].backoff.initial",
        "sinks[3].retry.initial",
        "sources[0].backoff.initial",
        "sources[0].discovery.initial",
        "sources[0].inactivityTimeout",
      ].map((path) => `${path}: must be more than 0`),
    );
  });

  test("parseThreads: a whole number from 0 to 16, each wrong value named at its path", async () => {
    const issues = await issuesOf({
      sources: [
        { type: "kubernetes", name: "a", parseThreads: -1 },
        { type: "kubernetes", name: "b", parseThreads: 1.5 },
        { type: "kubernetes", name: "c", parseThreads: "two" },
        { type: "kubernetes", name: "d", parseThreads: 17 },
      ],
    });
    for (const [i, message] of ["0 or more", "whole number", "number", "at most 16"].entries())
      expect(issues).toContainEqual(
        expect.stringMatching(new RegExp(`^sources\\[${i}\\]\\.parseThreads: .*${message}`, "i")),
      );
    expect(issues).toHaveLength(4);
  });

  test("every error is reported at once", async () => {
    const issues = await issuesOf({ sources: [{ type: "nope" }], store: { type: "libsql", url: 3 } });
    expect(issues).toContainEqual(expect.stringMatching(/^sources\[0\]\.type: unknown source type "nope"/));
    expect(issues).toContainEqual(expect.stringMatching(/^store\.url: /));
  });

  test("${VAR} is interpolated; a missing variable names itself and its path; $${ is a literal", async () => {
    const config = await resolveConfig(
      { cluster: { name: "${CLUSTER}-eu" } },
      { baseDir: "/", env: { CLUSTER: "prod" }, registry: builtins },
    );
    expect(config.cluster).toBe("prod-eu");
    expect(await issuesOf({ cluster: { name: "${MISSING_VAR}" } })).toContainEqual(
      "cluster.name: environment variable MISSING_VAR is not set",
    );
    expect(await issuesOf({ cluster: { name: "a${}b" } })).toContainEqual(
      "cluster.name: ${} names no environment variable (write $${ for a literal ${)",
    );
    // A shell's default (`:-`) is not read as part of a name that is not set.
    expect(await issuesOf({ http: { port: "${PORT:-8080}" } })).toContainEqual(
      "http.port: ${PORT:-8080}: ${} takes a variable's name alone, without a shell's :- default; set PORT",
    );
    // The value left empty is not blamed again by the checks it then fails.
    expect(
      await issuesOf({
        cluster: { name: "${CLUSTER_NAME}" },
        http: { tokens: ["${TOKEN}"] },
        sinks: [{ type: "webhook", url: "http://127.0.0.1:9/hook", secret: "${SECRET}${SECRET_2}" }],
      }),
    ).toEqual([
      "cluster.name: environment variable CLUSTER_NAME is not set",
      "http.tokens[0]: environment variable TOKEN is not set",
      "sinks[0].secret: environment variable SECRET is not set",
      "sinks[0].secret: environment variable SECRET_2 is not set",
    ]);
    const literal = await resolveConfig({ cluster: { name: "a$${B}" } }, { baseDir: "/", registry: builtins });
    expect(literal.cluster).toBe("a${B}");
  });

  test("a number or boolean from ${VAR} (always a string) is read as one where one belongs", async () => {
    const env = { PORT: "9090", MAX: "5000", REPLAY: "false" };
    const config = await resolveConfig(
      {
        http: { port: "${PORT}" },
        store: { type: "libsql", retention: { maxUpdates: "${MAX}" } },
        sinks: [{ type: "nats", servers: ["nats://127.0.0.1:4222"], replay: { enabled: "${REPLAY}" } }],
      },
      { baseDir: "/", env, registry: builtins },
    );
    expect(config.http.port).toBe(9090);
    expect(config.store.retention.maxUpdates).toBe(5000);
    expect(config.sinks[0]!.config).toMatchObject({ replay: { enabled: false } });
    // Where a number is one of the values allowed (`forever` or a count) too.
    const webhook = { type: "webhook", url: "https://h/", secret: "0123456789abcdef", maxRetries: "${RETRIES}" };
    const retries = (RETRIES: string) =>
      resolveConfig({ sinks: [webhook] }, { baseDir: "/", env: { RETRIES }, registry: builtins });
    expect((await retries("3")).sinks[0]!.config).toMatchObject({ maxRetries: 3 });
    expect((await retries("forever")).sinks[0]!.config).toMatchObject({ maxRetries: "forever" });
    expect(await issuesOf({ sinks: [webhook] }, { RETRIES: "often" })).toEqual([
      'sinks[0].maxRetries: Invalid type: Expected ("forever" | number) but received a string',
    ]);
    // Only a string that spells exactly a number (or true/false) is one; the value's own checks still apply.
    expect(await issuesOf({ http: { port: "${PORT}" } }, { PORT: "80x" })).toEqual([
      "http.port: Invalid type: Expected number but received a string",
    ]);
    expect(await issuesOf({ http: { port: "${PORT}" } }, { PORT: "99999" })).toEqual([
      "http.port: must be at most 65535",
    ]);
    expect(await issuesOf({ sinks: [{ type: "nats", servers: ["nats://n"], replay: { enabled: "yes" } }] })).toEqual([
      "sinks[0].replay.enabled: Invalid type: Expected boolean but received a string: write true " +
        '("yes" meant true in YAML 1.1, not in YAML 1.2, which kubemeta reads)',
    ]);
    // Where a string belongs, a variable that spells a number stays a string.
    expect(
      await resolveConfig({ cluster: { name: "${N}" } }, { baseDir: "/", env: { N: "42" }, registry: builtins }),
    ).toMatchObject({ cluster: "42" });
  });

  test("YAML and JSON files load; a missing or unparsable file is a clear error", async () => {
    const dir = await tempDir();
    await Bun.write(join(dir, "a.yaml"), "cluster:\n  name: from-yaml\n");
    await Bun.write(join(dir, "a.json"), JSON.stringify({ cluster: { name: "from-json" } }));
    await Bun.write(join(dir, "bad.yaml"), "cluster: [unclosed\n");
    await Bun.write(join(dir, "tab.yaml"), "http:\n  port: 8080\n\ttokens: [secret-0123456789abcdef]\n");
    expect((await loadConfig(join(dir, "a.yaml"), { registry: builtins })).cluster).toBe("from-yaml");
    expect((await loadConfig(join(dir, "a.json"), { registry: builtins })).cluster).toBe("from-json");
    await expect(loadConfig(join(dir, "missing.yaml"), { registry: builtins })).rejects.toThrow(
      /config file not found/,
    );
    await expect(loadConfig(dir, { registry: builtins })).rejects.toThrow(/is a directory, not a config file/);
    await expect(loadConfig(join(dir, "bad.yaml"), { registry: builtins })).rejects.toThrow(/cannot parse/);
    // A list is no config, even an empty one, which every section's defaults would otherwise accept.
    for (const list of ["[]\n", "- store: {}\n"]) {
      await Bun.write(join(dir, "list.yaml"), list);
      const error = await loadConfig(join(dir, "list.yaml"), { registry: builtins }).catch((e: ConfigError) => e);
      expect((error as ConfigError).issues).toEqual([
        { path: "", message: "Invalid type: Expected Object but received Array" },
      ]);
    }
    await Bun.write(join(dir, "two.yaml"), "cluster: { name: a }\n---\nhttp: { port: 9090 }\n");
    const two = await loadConfig(join(dir, "two.yaml"), { registry: builtins }).catch((e: ConfigError) => e);
    expect((two as ConfigError).issues).toEqual([
      { path: "", message: expect.stringMatching(/two\.yaml holds several YAML documents \(---\): a config is one$/) },
    ]);
    // Where it breaks, never what is written there (a token may be).
    const broken = await loadConfig(join(dir, "tab.yaml"), { registry: builtins }).catch((error: ConfigError) => error);
    expect((broken as ConfigError).issues).toEqual([
      {
        path: "",
        message: expect.stringMatching(/^cannot parse .*tab\.yaml: YAML Parse error: .* at line 3, column 1 \(tab/),
      },
    ]);
    expect(JSON.stringify(broken)).not.toContain("secret-0123456789abcdef");
    // JSON's parser names the word it stopped at: a token written without its quotes.
    await Bun.write(join(dir, "bare.json"), '{"http": {"tokens": [secret-0123456789abcdef]}}');
    const bare = await loadConfig(join(dir, "bare.json"), { registry: builtins }).catch((error: ConfigError) => error);
    expect((bare as ConfigError).issues).toEqual([
      {
        path: "",
        message: expect.stringMatching(/^cannot parse .*bare\.json: JSON Parse error: Unexpected identifier/),
      },
    ]);
    expect(JSON.stringify(bare)).not.toContain("secret");
    // A JSON file (whatever the case of its extension) is told where, not what YAML's rules would say.
    await Bun.write(join(dir, "commented.JSON"), '{"cluster": {"name": "a"} "log": {}}');
    const commented = await loadConfig(join(dir, "commented.JSON"), { registry: builtins }).catch(
      (e: ConfigError) => e,
    );
    expect((commented as ConfigError).issues).toEqual([
      {
        path: "",
        message: expect.stringMatching(/^cannot parse .*commented\.JSON: JSON Parse error: .* at line 1, column \d+$/),
      },
    ]);
  });
});
