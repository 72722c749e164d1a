/**
 * Bad input, never a crash or a hang: fuzzed configs (fast-check, seeded). Whatever the
 * config, resolveConfig either resolves or throws a ConfigError whose every issue has a
 * path string and a message; loadConfig does the same for any YAML text.
 * A failure prints its seed and counterexample; rerun with FC_SEED=<seed> to reproduce.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { ConfigError, loadConfig, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";

const SEED = Number(process.env.FC_SEED ?? 20_261_204);
const RUN_BOUND_MS = 2_000;
const ENV = { WEBHOOK_SECRET: "s3cret-s3cret-s3cret", KUBEMETA_TOKEN: "tok-tok-tok-tok-tok" };

/** The README's complete config: valid as it is. */
const VALID = {
  cluster: { name: "prod-eu" },
  log: { level: "info" },
  store: { type: "libsql", url: "file:/data/kubemeta.db", retention: { maxAge: "24h", maxUpdates: 1000000 } },
  sources: [{ type: "kubernetes", namespace: "default", resources: ["pods", "nodes"], backoff: { initial: "1s" } }],
  sinks: [
    { type: "sse" },
    { type: "nats", servers: ["nats://nats:4222"] },
    { type: "webhook", url: "https://receiver.example.com/kubemeta", secret: "${WEBHOOK_SECRET}" },
    { type: "jsonl" },
  ],
  http: { port: 8080, tokens: ["${KUBEMETA_TOKEN}"] },
  shutdownTimeout: "15s",
  slim: { annotations: ["example.com/"], kinds: { Rollout: { keep: ["spec.strategy"] }, Secret: {} } },
};

type Outcome = "resolved" | "config-error";

let dir: string | undefined;
async function baseDir(): Promise<string> {
  dir ??= await tempDir("kubemeta-fuzz-");
  return dir;
}
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Resolves or throws ConfigError with well-formed issues; anything else (or a run over the bound) fails. */
async function checked(run: () => Promise<unknown>): Promise<Outcome> {
  let timer: Timer | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${RUN_BOUND_MS} ms`)), RUN_BOUND_MS);
  });
  try {
    await Promise.race([run(), hang]);
    return "resolved";
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    expect(error.issues.length).toBeGreaterThan(0);
    for (const issue of error.issues) {
      expect(typeof issue.path).toBe("string");
      expect(typeof issue.message).toBe("string");
      expect(issue.message.length).toBeGreaterThan(0);
    }
    return "config-error";
  } finally {
    clearTimeout(timer);
  }
}

async function resolveChecked(raw: unknown): Promise<Outcome> {
  const base = await baseDir();
  return checked(() => resolveConfig(raw, { baseDir: base, env: ENV, registry: builtins }));
}

// Leaves: wrong types, unicode, env references, durations, huge strings; then nested junk.
const hugeString = fc.oneof(
  fc.constant("x".repeat(1_000_000)),
  fc.constant("é🚀\u0000\u202e".repeat(100_000)),
  fc.constant(`\${${"A".repeat(100_000)}}`),
);
const leaf = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.constantFrom("", "0", "-1", "1e309", "24h", "5m", "0s", "pods", "libsql", "sse", "nats") },
  { weight: 2, arbitrary: fc.constantFrom("${UNSET}", "$${literal}", "${}", "${WEBHOOK_SECRET}", "./plugin.ts", "/") },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null)) },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, -0, Number.NaN, Number.POSITIVE_INFINITY) },
  { weight: 1, arbitrary: hugeString },
);
const junk = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: "grapheme", maxLength: 12 }), tie("value"), { maxKeys: 4 }),
  ),
})).value;

/** Every path (as keys) of the valid config, to aim mutations at. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const paths: (string | number)[][] = [prefix];
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) paths.push(...pathsOf(item, [...prefix, i]));
  } else if (value && typeof value === "object")
    for (const [k, item] of Object.entries(value)) paths.push(...pathsOf(item, [...prefix, k]));
  return paths;
}
const PATHS = pathsOf(VALID).filter((p) => p.length > 0);

type Mutation =
  | { op: "set"; path: number; value: unknown }
  | { op: "delete"; path: number }
  | { op: "unknown-key"; path: number; key: string; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), path: fc.nat(PATHS.length - 1), value: junk }),
  fc.record({ op: fc.constant("delete" as const), path: fc.nat(PATHS.length - 1) }),
  fc.record({
    op: fc.constant("unknown-key" as const),
    path: fc.nat(PATHS.length - 1),
    key: fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }),
    value: junk,
  }),
);

function mutate(mutations: Mutation[]): unknown {
  const config = structuredClone(VALID) as Record<string | number, unknown>;
  for (const m of mutations) {
    const path = PATHS[m.path]!;
    let parent: Record<string | number, unknown> | undefined = config;
    for (const key of path.slice(0, -1)) {
      const next: unknown = parent?.[key];
      parent = next && typeof next === "object" ? (next as Record<string | number, unknown>) : undefined;
    }
    if (!parent) continue;
    const last = path.at(-1)!;
    if (m.op === "set") parent[last] = m.value;
    else if (m.op === "delete") delete parent[last];
    else {
      const target = parent[last];
      if (target && typeof target === "object" && !Array.isArray(target))
        (target as Record<string, unknown>)[m.key] = m.value;
    }
  }
  return config;
}

describe("configs the fuzzer broke (regressions)", () => {
  test("a plugin section of the wrong shape is a ConfigError, not a TypeError", async () => {
    for (const raw of [
      { sources: "" },
      { sinks: "sse" },
      { sinks: [{ type: "sse" }, 3] },
      { store: { url: "file:x.db" } },
      { store: "libsql", cluster: { name: 3 } },
      { cluster: 1, sources: [{ name: "k" }] },
    ])
      expect(await resolveChecked(raw)).toBe("config-error");
  });

  test("a YAML alias inside its own anchor is a ConfigError naming it, not a stack overflow", async () => {
    const file = join(await baseDir(), "cyclic.yaml");
    await writeFile(file, "sinks: &x [*x]\n");
    const error = await loadConfig(file, { registry: builtins, env: ENV }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toContainEqual({
      path: "sinks[0]",
      message: expect.stringContaining("refers to itself"),
    });
  });
});

describe("YAML that could hang a parser", () => {
  test("an alias bomb (billion laughs) is a ConfigError, at once", async () => {
    const names = "abcdefghij";
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < names.length; i++)
      lines.push(
        `${names[i]}: &${names[i]} [${Array(10)
          .fill(`*${names[i - 1]}`)
          .join(", ")}]`,
      );
    const file = join(await baseDir(), "bomb.yaml");
    await writeFile(file, `${lines.join("\n")}\nsinks: *j\n`);
    expect(await checked(() => loadConfig(file, { registry: builtins, env: ENV }))).toBe("config-error");
  });
});

describe("fuzzed configs", () => {
  test("the unmutated base config resolves", async () => {
    expect(await resolveChecked(VALID)).toBe("resolved");
  });

  test("arbitrary values as the whole config: a config or a ConfigError, never a crash or a hang", async () => {
    console.log(`fast-check seed ${SEED}`);
    const seen = { resolved: 0, "config-error": 0 };
    await fc.assert(
      fc.asyncProperty(junk, async (raw) => {
        seen[await resolveChecked(raw)]++;
      }),
      { seed: SEED, numRuns: 200 },
    );
    expect(seen["config-error"]).toBeGreaterThan(0);
  }, 60_000);

  test("mutations of a valid config (wrong types, unknown keys, huge strings, unicode, nested junk)", async () => {
    console.log(`fast-check seed ${SEED}`);
    const seen = { resolved: 0, "config-error": 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        seen[await resolveChecked(mutate(mutations))]++;
      }),
      { seed: SEED, numRuns: 300 },
    );
    // Both outcomes occur: mutations are not all fatal, and not all harmless.
    expect(seen.resolved).toBeGreaterThan(0);
    expect(seen["config-error"]).toBeGreaterThan(0);
  }, 60_000);

  test("arbitrary YAML text through loadConfig: a config or a ConfigError", async () => {
    console.log(`fast-check seed ${SEED}`);
    const file = join(await baseDir(), "kubemeta.yaml");
    const yamlish = fc.oneof(
      fc.string({ unit: "binary", maxLength: 200 }),
      junk.map((value) => JSON.stringify(value) ?? "null"),
      fc
        .array(fc.tuple(fc.constantFrom("cluster", "store", "sources", "sinks", "http", "log", "slim", "x"), leaf), {
          maxLength: 5,
        })
        .map((pairs) => pairs.map(([k, value]) => `${k}: ${JSON.stringify(value)}`).join("\n")),
      fc.constantFrom("{{{", "- - -\n  :", "a: &x [*x]", "? [a]\n: b", "\t\tx: 1", "!!binary 4", "a: !!int nope"),
    );
    await fc.assert(
      fc.asyncProperty(yamlish, async (text) => {
        await writeFile(file, text);
        await checked(() => loadConfig(file, { registry: builtins, env: ENV }));
      }),
      { seed: SEED, numRuns: 150 },
    );
  }, 60_000);
});
