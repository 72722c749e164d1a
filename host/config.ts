/**
 * The one declarative config: read (YAML or JSON), `${ENV}` interpolated, validated
 * against the host schema (config-schema.ts) and each plugin's own schema before anything
 * starts. Every error names its path, e.g. `sinks[1].url`.
 */
import * as v from "valibot";
import { readlink, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { RetentionPolicy, SinkDeclaration, SourceDeclaration, StoreDeclaration } from "../sdk/contract.ts";
import type { LOG_LEVELS } from "./logger.ts";
import type { HttpConfig } from "./http-config.ts";
import { haConfig, haProblems, type HaConfig } from "./ha-config.ts";
import { hostSchema, pluginEntry } from "./config-schema.ts";
import { explainUntyped } from "./config-untyped.ts";
import { bareMilliseconds } from "./config-keys.ts";
import { resolveEntries, type Resolved, type ResolveOptions } from "./config-entries.ts";
import { allowListProblems, ruleProblems, type SlimOptions } from "../core/slim/rules.ts";
import { parseAll, type ConfigIssue } from "./config-issues.ts";
import { duplicateKeys } from "./duplicate-keys.ts";
import { ConfigTooLarge, readConfigText } from "./config-file.ts";
import { interpolateConfig, within } from "./config-interpolate.ts";
import { yamlProblemOf } from "../kube/yaml.ts";
import { parseYamlConfig, showBraces } from "./config-yaml.ts";
import { jsonErrorPlace } from "./config-json.ts";

export type { ConfigIssue } from "./config-issues.ts";
export type { Resolved, ResolveOptions } from "./config-entries.ts";

export class ConfigError extends Error {
  /**
   * `warnings`: what a valid config's `warnings` would hold, said beside the errors. `sound`: what of the config its
   * errors leave sound, for `--check` to check further; none after an error that leaves nothing sure (a file unread).
   */
  constructor(
    readonly issues: ConfigIssue[],
    readonly warnings: string[] = [],
    readonly sound?: SoundParts,
  ) {
    super(issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("\n"));
    this.name = "ConfigError";
  }
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
  /**
   * What `--check` says of a valid config: the lines of `durations`, then one for each deprecated key an entry wrote,
   * at its entry, which a start logs through its plugin's logger.
   */
  warnings: string[];
  /** A line for each duration written as a bare number under a second (bareMilliseconds): a start logs them once. */
  durations: string[];
}

/**
 * The parts of a config `--check` checks beyond its schema (check-config.ts), a config's own or those its errors leave
 * sound: an entry undefined where it is not (its index kept: the checks' errors name it). No store without its
 * cluster's name, which its plugin is given as a start gives it.
 */
export interface SoundParts {
  cluster: string;
  store?: Resolved<StoreDeclaration>;
  sources: (Resolved<SourceDeclaration> | undefined)[];
  sinks: (Resolved<SinkDeclaration> | undefined)[];
  ha?: HaConfig;
}

/** Reads, interpolates and validates a config file. Throws ConfigError. */
export async function loadConfig(
  path: string,
  options: Omit<ResolveOptions, "baseDir" | "baseDirSaid">,
): Promise<Config> {
  const found = await stat(path).catch(() => undefined);
  if (!found) {
    // A link to nothing there (a config mount gone wrong) is no missing file to the one who lists the directory.
    const target = await readlink(path).catch(() => undefined);
    const message =
      target === undefined
        ? `config file not found: ${path}`
        : `${path} is a symbolic link to ${target}, which is not there`;
    throw new ConfigError([{ path: "", message }]);
  }
  if (found.isDirectory()) throw new ConfigError([{ path: "", message: `${path} is a directory, not a config file` }]);
  const text = await readConfigText(path).catch((error: NodeJS.ErrnoException) => {
    if (error instanceof ConfigTooLarge) throw new ConfigError([{ path: "", message: error.message }]);
    // A file kubemeta may not read (EACCES), or that fails as it is read: a config problem to name, not a crash.
    throw new ConfigError([{ path: "", message: `cannot read ${path}: ${error.code ?? error.message}` }]);
  });
  const format = path.toLowerCase().endsWith(".json") ? "json" : "yaml";
  let raw: unknown;
  /** The text parsed: a YAML one's variables may have had their braces hidden (config-yaml.ts). */
  let parsed = text;
  try {
    if (format === "json") raw = JSON.parse(text);
    else {
      const yaml = parseYamlConfig(text);
      parsed = yaml.parsed;
      if ("error" in yaml) throw yaml.error;
      raw = yaml.value;
    }
  } catch (error) {
    // Neither of Bun's parsers says where: client-node's does for YAML, config-json.ts for JSON, without quoting the
    // file (it may hold secrets). JSON's names the word it stopped at (`Unexpected identifier "…"`), a token written
    // without its quotes maybe: left out.
    const what = (error as Error).message.replace(/\s*"(?:[^"\\]|\\.)*"/g, "");
    const where = format === "json" ? jsonErrorPlace(parsed) : ((await yamlProblemOf(parsed)) ?? "");
    throw new ConfigError([{ path: "", message: `cannot parse ${path}: ${what}${where}` }]);
  }
  // Bun's YAML parser reads several documents as a list of them; its "Expected Object" would not say why.
  if (Array.isArray(raw) && format === "yaml" && /^[^#\s][\s\S]*^---(?:\s|$)/m.test(text))
    throw new ConfigError([{ path: "", message: `${path} holds several YAML documents (---): a config is one` }]);
  const duplicates = duplicateKeys(parsed, format).map((issue) => ({ ...issue, path: showBraces(issue.path) }));
  const config = await resolveConfig(raw ?? {}, { ...options, ...pluginBase(path) }).catch((error) => {
    if (!(error instanceof ConfigError)) throw error;
    // A key written twice leaves unsure which value was meant: nothing is checked further then.
    const sound = duplicates.length > 0 ? undefined : error.sound;
    throw new ConfigError([...duplicates, ...error.issues], error.warnings, sound);
  });
  if (duplicates.length > 0) throw new ConfigError(duplicates, config.warnings);
  return config;
}

/**
 * What a relative plugin `type` is relative to: the config file's folder, but for a config read through a descriptor
 * (`--config <(envsubst < kubemeta.yaml)`, `/dev/stdin`), whose folder, /dev/fd or /dev, holds no plugin: the working
 * directory then, as every other relative path of the config is.
 */
function pluginBase(path: string): Pick<ResolveOptions, "baseDir" | "baseDirSaid"> {
  const absolute = resolve(path);
  if (!/^\/(?:dev|proc)\//.test(absolute)) return { baseDir: dirname(absolute) };
  return { baseDir: process.cwd(), baseDirSaid: `the working directory, as the config is read from ${path}` };
}

/** Validates an already parsed config. */
export async function resolveConfig(raw: unknown, options: ResolveOptions): Promise<Config> {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const durations: string[] = [];
  // A list passes valibot's object schemas (its keys are its indexes): an empty one would be a valid config.
  if (Array.isArray(raw))
    throw new ConfigError([{ path: "", message: "Invalid type: Expected Object but received Array" }]);
  const { interpolated, asWritten } = interpolateConfig(raw, options.env ?? process.env, issues);
  // An unset variable's value is left empty: what a schema then says of that value only repeats the cause.
  const unset = new Set(issues.map((issue) => issue.path));
  const ownIssues = issues.length;
  // Nor is a part with a variable's problem in it checked further: its value may be the empty one left.
  const settled = <T>(part: T, path: string) => ([...unset].some((at) => within(at, path)) ? undefined : part);
  const invalid = ({ cluster, store, sources, sinks, ha }: SoundParts) =>
    new ConfigError(
      issues
        .map((issue, i) => (i < ownIssues ? issue : asWritten(issue)))
        .filter((issue, i) => i < ownIssues || !unset.has(issue.path)),
      [...durations, ...warnings],
      {
        cluster,
        store: settled(store, "store"),
        sources: sources.map((entry, i) => settled(entry, `sources[${i}]`)),
        sinks: sinks.map((entry, i) => settled(entry, `sinks[${i}]`)),
        ha: settled(ha, "ha"),
      },
    );
  const host = parseAll(hostSchema, interpolated, "", issues);
  durations.push(...bareMilliseconds(hostSchema, interpolated, ""));
  if (!host) {
    // Errors elsewhere hide none of the plugins' own: each plugin section that is sound on its own is checked too.
    const sections = (interpolated ?? {}) as Record<string, unknown>;
    explainUntyped(sections, options.registry, issues);
    // A failed parse's output is the raw input (a string, an entry without `type`): only a sound entry is used, and
    // each entry of a list on its own (a bad name in one hides nothing of the next).
    const sound = <S extends v.GenericSchema>(schema: S, entry: unknown) => {
      const parsed = v.safeParse(schema, entry);
      return parsed.success ? (parsed.output as v.InferOutput<S>) : undefined;
    };
    const entries = (key: "sources" | "sinks") =>
      (Array.isArray(sections[key]) ? (sections[key] as unknown[]) : []).map((entry) => sound(pluginEntry, entry));
    const soundHa = sound(hostSchema.entries.ha, sections.ha);
    const ha = soundHa && haConfig(soundHa, options.env ?? process.env);
    const slim = sound(hostSchema.entries.slim, sections.slim);
    if (slim) issues.push(...slimProblems(slim));
    const resolved = await resolveEntries(
      {
        store: sound(hostSchema.entries.store, sections.store),
        sources: entries("sources"),
        sinks: entries("sinks"),
        ha,
      },
      options,
      { issues, warnings, durations },
    );
    const cluster = sound(hostSchema.entries.cluster, sections.cluster);
    throw invalid({ ...resolved, cluster: cluster?.name ?? "", store: cluster && resolved.store, ha });
  }
  const { cluster, log, store, sources, sinks, http, shutdownTimeout, slim } = host;
  const env = options.env ?? process.env;
  const ha = haConfig(host.ha, env);
  issues.push(...slimProblems(slim), ...haProblems(ha));

  const resolved = await resolveEntries({ store, sources, sinks, ha }, options, { issues, warnings, durations });
  const { store: storeResolved, sources: sourcesResolved, sinks: sinksResolved } = resolved;
  if (issues.length > 0 || !storeResolved) throw invalid({ ...resolved, cluster: cluster.name, ha });

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
    warnings: [...durations, ...warnings],
    durations,
  };
}

/** What the `slim` section's schema cannot say: annotations no rule may keep, keep paths and node paths that clash. */
function slimProblems(slim: v.InferOutput<typeof hostSchema.entries.slim>): ConfigIssue[] {
  const problems = allowListProblems(slim.annotations).map((p) => ({ ...p, path: `slim.annotations${p.path}` }));
  for (const [kind, rule] of Object.entries(slim.kinds))
    for (const problem of ruleProblems(kind, rule))
      problems.push({ ...problem, path: `slim.kinds.${kind}.${problem.path}` });
  return problems;
}
