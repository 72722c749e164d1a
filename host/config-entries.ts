/**
 * The plugin entries of a config: each `type` found (a built-in, or a module path: plugin-module.ts) and
 * its keys parsed by the plugin's own schema, then what spans entries (names used twice, what only one entry may claim:
 * config-entry-checks.ts; a store the replicas share).
 */
import type * as v from "valibot";
import type {
  AnyDeclaration,
  PluginRegistry,
  SinkDeclaration,
  SourceDeclaration,
  StoreDeclaration,
} from "../sdk/contract.ts";
import type { HaConfig } from "./ha-config.ts";
import { ENTRY_NAME, ENTRY_NAME_RULE, type hostSchema, pluginEntry, type PluginEntry } from "./config-schema.ts";
import { deprecatedKeysOf, deprecation, type DeprecatedKey } from "../sdk/schema.ts";
import { parseAll, type ConfigIssue } from "./config-issues.ts";
import { bareMilliseconds } from "./config-keys.ts";
import { checkClaims, checkRbac, checkUniqueNames } from "./config-entry-checks.ts";
import { findDeclaration } from "./plugin-module.ts";

export interface Resolved<D extends AnyDeclaration> {
  declaration: D;
  name: string;
  config: unknown;
  /** The old names (`deprecatedKey`) the entry wrote: its plugin warns of them at start, `--check` says them. */
  deprecated: DeprecatedKey[];
}

export interface ResolveOptions {
  /** Plugin module paths are relative to it. */
  baseDir: string;
  /** What `baseDir` is, as an error says it: the config file's folder unless said. */
  baseDirSaid?: string;
  /** The built-in plugins a `type` may name (main.ts hands in plugins/index.ts). */
  registry: PluginRegistry;
  env?: Record<string, string | undefined>;
}

type HostConfig = v.InferOutput<typeof hostSchema>;

/** The keys the host reads from every plugin entry, which its plugin's schema does not see. */
const ENTRY_KEYS = Object.keys(pluginEntry.entries);
const STORE_KEYS = [...ENTRY_KEYS, "retention"];

/**
 * Loads each plugin entry (undefined: one not sound on its own, whose issues are said already; the store too when the
 * replicas cannot share it) and checks what spans entries: unique names, what only one entry may claim, and a store
 * the replicas can share. `warnings`: a line for each deprecated key an entry wrote (`sinks[0]: config key "linger" is
 * deprecated …`), `durations` for each duration written as a bare number under a second, whether the entry is sound
 * or not.
 */
export async function resolveEntries(
  entries: {
    store: HostConfig["store"] | undefined;
    sources: (PluginEntry | undefined)[];
    sinks: (PluginEntry | undefined)[];
    ha: HaConfig | undefined;
  },
  options: ResolveOptions,
  found: Found,
) {
  const { issues } = found;
  const store =
    entries.store &&
    (await resolveEntry<StoreDeclaration>(
      "store",
      "store",
      withoutRetention(entries.store),
      options,
      found,
      STORE_KEYS,
    ));
  const sources = await resolveInOrder<SourceDeclaration>("source", "sources", entries.sources, options, found);
  const sinks = await resolveInOrder<SinkDeclaration>("sink", "sinks", entries.sinks, options, found);
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
  const plugins = [
    ...sources.map((entry, i) => [`sources[${i}]`, entry] as const),
    ...sinks.map((entry, i) => [`sinks[${i}]`, entry] as const),
  ];
  checkClaims(plugins, issues);
  checkRbac([["store", store] as const, ...plugins], issues);
  const unshared = entries.ha && store && storeUnshareable(store);
  if (unshared) issues.push({ path: "ha.enabled", message: `replicas need a store they all reach: ${unshared}` });
  // Nor is such a store opened by `--check` (a file made on a pod's volume for nothing): it is no store of this config.
  return { store: unshared ? undefined : store, sources, sinks };
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

/** What resolving entries finds: errors, and warnings that leave the config valid (`durations`: bareMilliseconds). */
export interface Found {
  issues: ConfigIssue[];
  warnings: string[];
  durations: string[];
}

/**
 * A section's entries, their modules loaded side by side; each entry's issues (and warnings) are added in the entries'
 * order, as the schema's are, rather than as their imports settle (a module not found is said after a built-in
 * misspelt).
 */
async function resolveInOrder<D extends AnyDeclaration>(
  kind: D["kind"],
  section: string,
  entries: (PluginEntry | undefined)[],
  options: ResolveOptions,
  found: Found,
): Promise<(Resolved<D> | undefined)[]> {
  const own = entries.map((): Found => ({ issues: [], warnings: [], durations: [] }));
  const resolved = await Promise.all(
    entries.map((e, i) => e && resolveEntry<D>(kind, `${section}[${i}]`, e, options, own[i]!, ENTRY_KEYS)),
  );
  found.issues.push(...own.flatMap(({ issues }) => issues));
  found.warnings.push(...own.flatMap(({ warnings }) => warnings));
  found.durations.push(...own.flatMap(({ durations }) => durations));
  return resolved;
}

/**
 * A plugin entry's declaration and its config, parsed by the plugin's schema; undefined after adding its issues.
 * `hostKeys`: the entry's keys the host read, known to a typo's did-you-mean as the plugin's are.
 */
async function resolveEntry<D extends AnyDeclaration>(
  kind: D["kind"],
  path: string,
  entry: PluginEntry,
  options: ResolveOptions,
  { issues, warnings, durations }: Found,
  hostKeys: readonly string[],
): Promise<Resolved<D> | undefined> {
  const { type, name, ...rest } = entry;
  const declaration = await findDeclaration(kind, type, options, path, issues);
  if (!declaration) return undefined;
  const clashes = bothWritten(declaration.schema, rest);
  for (const { key, use } of clashes)
    issues.push({ path: `${path}.${key}`, message: `"${key}" is the old name of "${use}": write only "${use}"` });
  // Of an entry with errors too: they are said beside its errors.
  const deprecated = deprecatedWritten(declaration.schema, rest, clashes);
  warnings.push(...deprecated.map((key) => `${path}: ${deprecation(key)}`));
  durations.push(...bareMilliseconds(declaration.schema, rest, path));
  const unnamed = name === undefined && (noName(declaration.type) ?? borrowsCursor(declaration, options.registry));
  if (unnamed) issues.push({ path: `${path}.name`, message: unnamed });
  const config = parseAll(declaration.schema, rest, path, issues, hostKeys);
  if (config === undefined || clashes.length > 0 || unnamed) return undefined;
  return { declaration: declaration as D, name: name ?? declaration.type, config, deprecated };
}

/**
 * A declared type that cannot be the entry's default name: a name a user writes is held to the rule, and the default
 * goes where a written one does (a sink's cursor key, metric labels, log lines).
 */
function noName(type: string): string | undefined {
  if (ENTRY_NAME.test(type)) return undefined;
  return (
    `required: its plugin declares type ${JSON.stringify(type)}, no name (${ENTRY_NAME_RULE}), so the entry has ` +
    "none by default; give it one"
  );
}

/** A sink loaded by path that declares a built-in's type (`webhook`) would take its default name, and its cursor. */
function borrowsCursor(declaration: AnyDeclaration, registry: PluginRegistry): string | undefined {
  const builtin = declaration.kind === "sink" && registry.sink.find((d) => d.type === declaration.type);
  if (!builtin || builtin === declaration) return undefined;
  const type = declaration.type;
  return (
    `required: its plugin declares type "${type}", the built-in sink's, so by default it would go by that sink's ` +
    `name and resume from its cursor in the store; give it a name of its own (name: ${type} if that is meant)`
  );
}

/** The deprecated keys written beside the keys that replaced them (`batchSize` with `batch.size`). */
function bothWritten(schema: v.GenericSchema, entry: Record<string, unknown>): DeprecatedKey[] {
  const clashes = deprecatedKeysOf(schema).filter(({ key, use }) => written(entry, key) && written(entry, use));
  // `backoff` beside `retry` says all: its `initial` beside `retry.initial` is the same mistake.
  return clashes.filter(({ key }) => !clashes.some((outer) => key.startsWith(`${outer.key}.`)));
}

/** Whether the entry has a value at the dotted `path` (`backoff.initial`). */
function written(entry: Record<string, unknown>, path: string): boolean {
  let value: unknown = entry;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return false;
    value = (value as Record<string, unknown>)[key];
  }
  return true;
}

/**
 * The old keys an entry wrote, the innermost of each (`backoff.initial` says what `backoff` would), but for those
 * written beside their new key (`clashes`: an error already).
 */
function deprecatedWritten(
  schema: v.GenericSchema,
  entry: Record<string, unknown>,
  clashes: DeprecatedKey[],
): DeprecatedKey[] {
  const keys = deprecatedKeysOf(schema).filter(({ key }) => written(entry, key));
  return keys.filter(
    ({ key }) =>
      !keys.some((inner) => inner.key.startsWith(`${key}.`)) &&
      !clashes.some((clash) => key === clash.key || key.startsWith(`${clash.key}.`)),
  );
}
