/**
 * A plugin entry without `type` (`store: { file: kubemeta.db }`): "missing" alone does not say which type to write,
 * nor that its keys are wrong for it too. The built-in plugin of its kind that takes the most of its keys (as written,
 * misspelt, or guessed: config-keys.ts) is named, and the entry's keys are checked against its schema, so that one
 * check says both the type and, say, `url: file:<path>` for `file`.
 */
import type { AnyDeclaration, PluginRegistry } from "../sdk/contract.ts";
import { parseAll, type ConfigIssue } from "./config-issues.ts";
import { meantKey } from "./config-keys.ts";
import { hostSchema, pluginEntry } from "./config-schema.ts";

/**
 * Says, at each `<entry>.type` that `issues` has as missing, the type to write, and adds after it what that type's
 * schema finds in the entry's keys. `sections`: the config's top level as parsed (its variables replaced).
 */
export function explainUntyped(sections: Record<string, unknown>, registry: PluginRegistry, issues: ConfigIssue[]) {
  const listed = (key: "sources" | "sinks", kind: "source" | "sink") =>
    // Array.from: a list with holes (made in code, not read from a file) gives each its place, as undefined.
    Array.from(Array.isArray(sections[key]) ? (sections[key] as unknown[]) : [], (entry, i) => ({
      path: `${key}[${i}]`,
      kind,
      entry,
      host: pluginEntry,
    }));
  const entries = [
    // Its `retention` is the host's: not a key of its plugin.
    { path: "store", kind: "store" as const, entry: sections.store, host: hostSchema.entries.store },
    ...listed("sources", "source"),
    ...listed("sinks", "sink"),
  ];
  for (const { path, kind, entry, host } of entries) {
    const at = issues.findIndex((issue) => issue.path === `${path}.type`);
    // A key that is `type` misspelt is told so already: that is the fix.
    if (at === -1 || !isUntyped(entry) || Object.keys(entry).some((key) => meantKey(host, key) === "type")) continue;
    const keys = Object.keys(entry).filter((key) => meantKey(host, key) === undefined);
    const { said, only } = typeToWrite(kind, registry[kind], keys);
    issues[at] = { ...issues[at]!, message: `${issues[at]!.message}; ${said}` };
    if (!only) continue;
    const found: ConfigIssue[] = [];
    parseAll(only.schema, Object.fromEntries(keys.map((key) => [key, entry[key]])), path, found);
    issues.splice(at + 1, 0, ...found);
  }
}

function isUntyped(entry: unknown): entry is Record<string, unknown> {
  return typeof entry === "object" && entry !== null && !Array.isArray(entry) && !Object.hasOwn(entry, "type");
}

/**
 * Which type to write: the built-in that takes the most of `keys` (`only`, when one does), those that take as many
 * when several do, or any built-in or a module when none takes any.
 */
function typeToWrite(
  kind: AnyDeclaration["kind"],
  builtins: readonly AnyDeclaration[],
  keys: readonly string[],
): { said: string; only?: AnyDeclaration } {
  const taken = builtins.map((d) => keys.filter((key) => meantKey(d.schema, key) !== undefined).length);
  const most = Math.max(0, ...taken);
  const types = (list: readonly AnyDeclaration[]) =>
    list
      .map((d) => d.type)
      .join(", ")
      .replace(/, ([^,]*)$/, " or $1");
  const kinds = (list: readonly AnyDeclaration[]) => (list.length === 1 ? kind : `${kind}s`);
  if (most === 0)
    return { said: `write type: ${types(builtins)} (the built-in ${kinds(builtins)}), or a path to a plugin module` };
  const best = builtins.filter((_, i) => taken[i] === most);
  const take = best.length > 1 ? "take" : "takes";
  const said = `write type: ${types(best)} (the built-in ${kinds(best)} that ${take} these keys)`;
  return best.length > 1 ? { said } : { said, only: best[0] };
}
