/**
 * The one declarative config: read (YAML or JSON), `${ENV}` interpolated, validated
 * against the host schema (config-schema.ts) and each plugin's own schema before anything
 * starts. Every error names its path, e.g. `sinks[1].url`.
 */
import * as v from "valibot";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type {
  AnyDeclaration,
  PluginRegistry,
  RetentionPolicy,
  SinkDeclaration,
  SourceDeclaration,
  StoreDeclaration,
} from "../sdk/contract.ts";
import type { LOG_LEVELS } from "./logger.ts";
import type { HttpConfig } from "./http-config.ts";
import { haConfig, type HaConfig } from "./ha-config.ts";
import { hostSchema, pluginEntry, type PluginEntry } from "./config-schema.ts";
import type { SlimOptions } from "../core/slim.ts";
import { allowListProblems, ruleProblems } from "../core/slim/rules.ts";
import { deprecatedKeysOf, type DeprecatedKey } from "../sdk/schema.ts";
import { parseAll, type ConfigIssue } from "./config-issues.ts";
import { duplicateKeys } from "./duplicate-keys.ts";
import { yamlProblemOf } from "../kube/yaml.ts";

export type { ConfigIssue } from "./config-issues.ts";

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("\n"));
    this.name = "ConfigError";
  }
}

export interface Resolved<D extends AnyDeclaration> {
  declaration: D;
  name: string;
  config: unknown;
}

export interface Config {
  cluster: string;
  logLevel: (typeof LOG_LEVELS)[number];
  store: Resolved<StoreDeclaration> & { retention: RetentionPolicy; pruneIntervalMs: number };
  sources: Resolved<SourceDeclaration>[];
  sinks: Resolved<SinkDeclaration>[];
  http: HttpConfig;
  shutdownTimeoutMs: number;
  slim: SlimOptions;
  /** Undefined: one replica, always the writer. */
  ha?: HaConfig;
}

/** Reads, interpolates and validates a config file. Throws ConfigError. */
export async function loadConfig(
  path: string,
  options: { registry: PluginRegistry; env?: Record<string, string | undefined> },
): Promise<Config> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new ConfigError([{ path: "", message: `config file not found: ${path}` }]);
  const text = await file.text();
  const format = path.endsWith(".json") ? "json" : "yaml";
  let raw: unknown;
  try {
    raw = format === "json" ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (error) {
    // Neither of Bun's parsers says where: client-node's does, without quoting the file (it may hold secrets).
    const where = yamlProblemOf(text) ?? "";
    throw new ConfigError([{ path: "", message: `cannot parse ${path}: ${(error as Error).message}${where}` }]);
  }
  const duplicates = duplicateKeys(text, format);
  const config = await resolveConfig(raw ?? {}, { ...options, baseDir: dirname(resolve(path)) }).catch((error) => {
    throw error instanceof ConfigError ? new ConfigError([...duplicates, ...error.issues]) : error;
  });
  if (duplicates.length > 0) throw new ConfigError(duplicates);
  return config;
}

export interface ResolveOptions {
  /** Plugin module paths are relative to it. */
  baseDir: string;
  /** The built-in plugins a `type` may name (main.ts hands in plugins/index.ts). */
  registry: PluginRegistry;
  env?: Record<string, string | undefined>;
}

/** Validates an already parsed config. */
export async function resolveConfig(raw: unknown, options: ResolveOptions): Promise<Config> {
  const issues: ConfigIssue[] = [];
  const interpolated = interpolate(raw, options.env ?? process.env, "", issues);
  // An unset variable's value is left empty: what a schema then says of that value only repeats the cause.
  const unset = new Set(issues.map((issue) => issue.path));
  const ownIssues = issues.length;
  const invalid = () => new ConfigError(issues.filter((issue, i) => i < ownIssues || !unset.has(issue.path)));
  const host = parseAll(hostSchema, interpolated, "", issues);
  if (!host) {
    // Errors elsewhere hide none of the plugins' own: each plugin section that is sound on its own is checked too.
    const sections = (interpolated ?? {}) as Record<string, unknown>;
    // A failed parse's output is the raw input (a string, an entry without `type`): only a sound entry is used, and
    // each entry of a list on its own (a bad name in one hides nothing of the next).
    const sound = <S extends v.GenericSchema>(schema: S, entry: unknown) => {
      const parsed = v.safeParse(schema, entry);
      return parsed.success ? (parsed.output as v.InferOutput<S>) : undefined;
    };
    const entries = (key: "sources" | "sinks") =>
      (Array.isArray(sections[key]) ? (sections[key] as unknown[]) : []).map((entry) => sound(pluginEntry, entry));
    const ha = sound(hostSchema.entries.ha, sections.ha);
    await resolveEntries(
      {
        store: sound(hostSchema.entries.store, sections.store),
        sources: entries("sources"),
        sinks: entries("sinks"),
        ha: ha && haConfig(ha, options.env ?? process.env),
      },
      options,
      issues,
    );
    throw invalid();
  }
  const { cluster, log, store, sources, sinks, http, shutdownTimeout, slim } = host;
  const env = options.env ?? process.env;
  const ha = haConfig(host.ha, env);
  for (const problem of allowListProblems(slim.annotations))
    issues.push({ ...problem, path: `slim.annotations${problem.path}` });
  for (const [kind, rule] of Object.entries(slim.kinds))
    for (const problem of ruleProblems(kind, rule))
      issues.push({ ...problem, path: `slim.kinds.${kind}.${problem.path}` });

  const resolved = await resolveEntries({ store, sources, sinks, ha }, options, issues);
  const { store: storeResolved, sources: sourcesResolved, sinks: sinksResolved } = resolved;
  if (issues.length > 0 || !storeResolved) throw invalid();

  return {
    cluster: cluster.name,
    logLevel: log.level,
    store: {
      ...storeResolved,
      retention: { maxAgeMs: store.retention.maxAge, maxUpdates: store.retention.maxUpdates },
      pruneIntervalMs: store.retention.interval,
    },
    sources: sourcesResolved.filter((r) => r !== undefined),
    sinks: sinksResolved.filter((r) => r !== undefined),
    http,
    shutdownTimeoutMs: shutdownTimeout,
    slim: { annotationAllowList: slim.annotations, kinds: slim.kinds },
    ...(ha ? { ha } : {}),
  };
}

type HostConfig = v.InferOutput<typeof hostSchema>;

/**
 * Loads each plugin entry (undefined: one not sound on its own, whose issues are said already) and checks what spans
 * entries: unique names, and a store the replicas can share.
 */
async function resolveEntries(
  entries: {
    store: HostConfig["store"] | undefined;
    sources: (PluginEntry | undefined)[];
    sinks: (PluginEntry | undefined)[];
    ha: HaConfig | undefined;
  },
  options: ResolveOptions,
  issues: ConfigIssue[],
) {
  const store =
    entries.store &&
    (await resolveEntry<StoreDeclaration>("store", "store", withoutRetention(entries.store), options, issues));
  const sources = await Promise.all(
    entries.sources.map((e, i) => e && resolveEntry<SourceDeclaration>("source", `sources[${i}]`, e, options, issues)),
  );
  const sinks = await Promise.all(
    entries.sinks.map((e, i) => e && resolveEntry<SinkDeclaration>("sink", `sinks[${i}]`, e, options, issues)),
  );
  // A name written is known even of an entry that failed; a default one (its type's) only of one that loaded.
  checkUniqueNames(
    "sources",
    entries.sources.map((entry, i) => entry?.name ?? sources[i]?.name),
    issues,
  );
  checkUniqueNames(
    "sinks",
    entries.sinks.map((entry, i) => entry?.name ?? sinks[i]?.name),
    issues,
  );
  const unshared = entries.ha && store && storeUnshareable(store);
  if (unshared) issues.push({ path: "ha.enabled", message: `replicas need a store they all reach: ${unshared}` });
  return { store, sources, sinks };
}

/** Why the store cannot be shared by replicas; a store plugin that does not say is taken as local. */
function storeUnshareable({ declaration, config }: Resolved<StoreDeclaration>): string | undefined {
  if (!declaration.unshareable) return `store ${declaration.type} does not say it can be shared by replicas`;
  return declaration.unshareable(config);
}

/** The store's entry as its plugin sees it: `retention` is the host's. */
function withoutRetention({ retention: _, ...entry }: HostConfig["store"]): PluginEntry {
  return entry;
}

/** A plugin entry's declaration and its config, parsed by the plugin's schema; undefined after adding its issues. */
async function resolveEntry<D extends AnyDeclaration>(
  kind: D["kind"],
  path: string,
  entry: PluginEntry,
  options: ResolveOptions,
  issues: ConfigIssue[],
): Promise<Resolved<D> | undefined> {
  const { type, name, ...rest } = entry;
  const declaration = await findDeclaration(kind, type, options, path, issues);
  if (!declaration) return undefined;
  const clashes = bothWritten(declaration.schema, rest);
  for (const { key, use } of clashes)
    issues.push({ path: `${path}.${key}`, message: `"${key}" is the old name of "${use}": write only "${use}"` });
  const config = parseAll(declaration.schema, rest, path, issues);
  if (config === undefined || clashes.length > 0) return undefined;
  return { declaration: declaration as D, name: name ?? declaration.type, config };
}

/** The deprecated keys written beside the keys that replaced them (`batchSize` with `batch.size`). */
function bothWritten(schema: v.GenericSchema, entry: Record<string, unknown>): DeprecatedKey[] {
  const written = (path: string) => {
    let value: unknown = entry;
    for (const key of path.split(".")) {
      if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return false;
      value = (value as Record<string, unknown>)[key];
    }
    return true;
  };
  const clashes = deprecatedKeysOf(schema).filter(({ key, use }) => written(key) && written(use));
  // `backoff` beside `retry` says all: its `initial` beside `retry.initial` is the same mistake.
  return clashes.filter(({ key }) => !clashes.some((outer) => key.startsWith(`${outer.key}.`)));
}

function checkUniqueNames(section: string, names: (string | undefined)[], issues: ConfigIssue[]) {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    if (seen.has(name))
      issues.push({ path: `${section}[${i}].name`, message: `"${name}" is used twice; give each entry its own name` });
    seen.add(name);
  });
}

/** A `type` with a slash or a file extension is a module path; anything else a built-in. */
async function findDeclaration(
  kind: AnyDeclaration["kind"],
  type: string,
  { baseDir, registry }: ResolveOptions,
  path: string,
  issues: ConfigIssue[],
) {
  const isPath = type.includes("/") || /\.(ts|js|mjs)$/.test(type);
  if (!isPath) {
    const found = registry[kind].find((d) => d.type === type);
    if (!found) {
      const known = registry[kind].map((d) => d.type).join(", ");
      issues.push({
        path: `${path}.type`,
        message: `unknown ${kind} type "${type}" (built-in: ${known}; or a path to a plugin module)`,
      });
    }
    return found;
  }
  const file = isAbsolute(type) ? type : resolve(baseDir, type);
  let declaration: unknown;
  try {
    declaration = (await import(pathToFileURL(file).href)).default;
  } catch (error) {
    issues.push({ path: `${path}.type`, message: `cannot load plugin module ${file}: ${(error as Error).message}` });
    return undefined;
  }
  const d = declaration as Partial<AnyDeclaration> | undefined;
  if (!d || d.kind !== kind || typeof d.type !== "string" || typeof d.create !== "function" || !d.schema) {
    issues.push({
      path: `${path}.type`,
      message:
        `${file} must default-export a ${kind} declaration ` +
        `(define${kind[0]!.toUpperCase()}${kind.slice(1)}({ type, schema, create }))`,
    });
    return undefined;
  }
  return d as AnyDeclaration;
}

/** Replaces `${NAME}` in every string with the environment's value; `$${` stands for a literal `${`. */
function interpolate(
  value: unknown,
  env: Record<string, string | undefined>,
  path: string,
  issues: ConfigIssue[],
  ancestors = new Set<object>(),
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$(\$?)\{([^}]*)\}/g, (match, escaped: string, name: string) => {
      if (escaped) return match.slice(1);
      const found = env[name];
      if (found === undefined) issues.push({ path, message: `environment variable ${name} is not set` });
      return found ?? "";
    });
  }
  if (value && typeof value === "object") {
    // A YAML alias inside its own anchor (`a: &x [*x]`) parses to a cycle.
    if (ancestors.has(value)) {
      issues.push({ path, message: "refers to itself (a YAML alias inside its own anchor)" });
      return null;
    }
    ancestors.add(value);
    try {
      if (Array.isArray(value))
        return value.map((item, i) => interpolate(item, env, `${path}[${i}]`, issues, ancestors));
      return Object.fromEntries(
        Object.entries(value).map(([k, item]) => [
          k,
          interpolate(item, env, path ? `${path}.${k}` : k, issues, ancestors),
        ]),
      );
    } finally {
      ancestors.delete(value);
    }
  }
  return value;
}
