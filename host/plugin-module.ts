/**
 * The declaration a plugin entry's `type` names: a built-in from the registry, or the default export of a module
 * loaded by path (relative to the config file), checked to be a declaration; what is wrong is a config issue at the
 * entry's `type`.
 */
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { AnyDeclaration } from "../sdk/contract.ts";
import type { ConfigIssue } from "./config-issues.ts";
import { nearestName } from "./config-keys.ts";
import type { ResolveOptions } from "./config-entries.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { PLUGIN_DEADLINE_MS } from "./supervise.ts";

/** A `type` with a slash or a file extension is a module path; anything else a built-in. */
export async function findDeclaration(
  kind: AnyDeclaration["kind"],
  type: string,
  { baseDir, baseDirSaid, registry }: ResolveOptions,
  path: string,
  issues: ConfigIssue[],
) {
  const isPath = type.includes("/") || /\.(ts|js|mjs)$/.test(type);
  if (!isPath) {
    const found = registry[kind].find((d) => d.type === type);
    if (!found) {
      const types = registry[kind].map((d) => d.type);
      // `SSE`, `webhok`: the built-in it likely is, as for a key.
      const near = nearestName(type, types);
      const meant = near === undefined ? "" : `; did you mean "${near}"?`;
      issues.push({
        path: `${path}.type`,
        message: `unknown ${kind} type "${type}"${meant} (built-in: ${types.join(", ")}; or a path to a plugin module)`,
      });
    }
    return found;
  }
  const file = isAbsolute(type) ? type : resolve(baseDir, type);
  let exports: Record<string, unknown>;
  try {
    // A top-level await that never settles (a connection at load) would hold --check and the start for good.
    const loading: Promise<Record<string, unknown>> = import(pathToFileURL(file).href);
    const loaded = await until(loading, Date.now() + PLUGIN_DEADLINE_MS);
    if (loaded === TIMED_OUT) {
      loading.catch(() => {});
      issues.push({
        path: `${path}.type`,
        message:
          `cannot load plugin module ${file}: it did not finish loading within ${PLUGIN_DEADLINE_MS / 1000}s ` +
          "(a top-level await that does not settle: connect in the plugin's start instead)",
      });
      return undefined;
    }
    exports = loaded;
  } catch (error) {
    const base = baseDirSaid ?? "the config file's folder";
    issues.push({
      path: `${path}.type`,
      message: `cannot load plugin module ${file}: ${loadError(error, file, base)}`,
    });
    return undefined;
  }
  const d = exports.default as Partial<AnyDeclaration> | undefined;
  if (!d || d.kind !== kind || typeof d.type !== "string" || typeof d.create !== "function" || !d.schema) {
    issues.push({ path: `${path}.type`, message: notTheDeclaration(kind, file, exports) });
    return undefined;
  }
  if (!isSchema(d.schema)) {
    issues.push({
      path: `${path}.type`,
      message:
        `${file}'s declaration has a schema that is no valibot schema: ` +
        "make it with the SDK's v, as v.strictObject({ … })",
    });
    return undefined;
  }
  if (isAsyncWithin(d.schema)) {
    issues.push({
      path: `${path}.type`,
      message:
        `${file}'s declaration has an async schema (v.objectAsync, v.pipeAsync, v.checkAsync, …): kubemeta ` +
        "validates each entry at once, before anything starts, so make it synchronous and check what needs I/O in " +
        "the declaration's check(config), which --check runs",
    });
    return undefined;
  }
  return d as AnyDeclaration;
}

/** This kubemeta's folder: what a plugin outside it installs to import `kubemeta/sdk`. */
const KUBEMETA_ROOT = resolve(import.meta.dir, "..");
/** package.json's `exports`, as a plugin imports them. */
const PACKAGE_EXPORTS = ["kubemeta/sdk", "kubemeta/testing", "kubemeta/client"];
const DEFINE = { source: "defineSource", store: "defineStore", sink: "defineSink" } as const;
const PLACE = { source: "`sources`", store: "`store`", sink: "`sinks`" } as const;

/**
 * What to write when a module's default export is not the declaration its entry needs. The two mistakes an author
 * cannot see from "must default-export" alone are said: a declaration of another kind (a source listed under `sinks`),
 * and the right one exported under a name rather than as the default.
 */
function notTheDeclaration(kind: AnyDeclaration["kind"], file: string, exports: Record<string, unknown>): string {
  const wanted = `${file} must default-export a ${kind} declaration (${DEFINE[kind]}({ type, schema, create }))`;
  const other = declarationKind(exports.default);
  if (other !== undefined && other !== kind)
    return `${wanted}; its default export is a ${other} declaration (${DEFINE[other]}): list it under ${PLACE[other]}`;
  const named = Object.keys(exports).find((name) => name !== "default" && declarationKind(exports[name]) === kind);
  if (named !== undefined) return `${wanted}; it exports one as \`${named}\`, not as its default: write export default`;
  const made = (exports.default ?? {}) as Record<string, unknown>;
  if (made.kind !== kind) return wanted;
  // Made by define…(), which TypeScript would have held to its shape: a plugin in JavaScript, or run unchecked.
  const lacks = [
    typeof made.type !== "string" && "type (a string)",
    !made.schema && "schema",
    typeof made.create !== "function" && "create (a function)",
  ].filter((part) => part !== false);
  return `${wanted}; its declaration has no ${lacks.join(", no ")}`;
}

function declarationKind(value: unknown): AnyDeclaration["kind"] | undefined {
  const { kind, create } = (value ?? {}) as { kind?: unknown; create?: unknown };
  if (typeof create !== "function") return undefined;
  return kind === "source" || kind === "store" || kind === "sink" ? kind : undefined;
}

/**
 * Whether a schema, or a schema or pipe action anywhere within it, is async. The host parses synchronously, and valibot
 * hands it an async part's Promise as if parsed: a whole entry would be dropped without a word, a key read as
 * undefined, and the part's checks never run. Its schemas and actions are the objects with a `kind` beneath it.
 */
function isAsyncWithin(node: unknown, seen = new Set<object>()): boolean {
  if (typeof node !== "object" || node === null || seen.has(node)) return false;
  seen.add(node);
  const { kind, async } = node as { kind?: unknown; async?: unknown };
  if (typeof kind === "string" && async === true) return true;
  return Object.values(node).some((value) => isAsyncWithin(value, seen));
}

/** What valibot parses with (its schemas' `~run`): anything else is the host's TypeError as it parses the entry. */
function isSchema(schema: unknown): boolean {
  const candidate = schema as { kind?: unknown; "~run"?: unknown };
  return candidate.kind === "schema" && typeof candidate["~run"] === "function";
}

/**
 * Why the module `file` did not load. Bun says where a syntax error is beside its message, not in it ("Unexpected ="
 * alone): its file (the plugin's, or a module it imports), line and column are said first. The plugin's own file not
 * found is said as such, where Bun names the host's module that imported it, and a folder with nothing to load too.
 */
function loadError(error: unknown, file: string, base: string): string {
  const { message, position, code, specifier } = error as {
    message?: unknown;
    position?: { file?: unknown; line?: unknown; column?: unknown } | null;
    code?: unknown;
    specifier?: unknown;
  };
  if (code === "ERR_MODULE_NOT_FOUND" && (specifier === file || specifier === pathToFileURL(file).href)) {
    // A folder loads as Bun resolves one (README, Load it by path): its package.json's main, else its index.
    if (statSync(file, { throwIfNoEntry: false })?.isDirectory())
      return "a folder with nothing to load: no package.json whose main names a module, no index.ts (or .js)";
    return `no such file (a relative type is relative to ${base})`;
  }
  if (code === "ERR_MODULE_NOT_FOUND" && typeof specifier === "string" && /^kubemeta(\/|$)/.test(specifier)) {
    // Bun says "Cannot find package 'kubemeta'" both for a package not installed and for a path it does not export.
    if (!PACKAGE_EXPORTS.includes(specifier))
      return `${String(message)}: kubemeta's package exports ${PACKAGE_EXPORTS.join(", ")} alone`;
    // It resolves as a package from the plugin's folder up: a plugin outside this checkout needs it installed.
    return (
      `${String(message)}: install the kubemeta that runs it in the plugin's folder or one above it ` +
      `(npm install ${KUBEMETA_ROOT}; README, "Load it by path")`
    );
  }
  if (typeof position?.file === "string" && typeof position.line === "number")
    return `${position.file}:${position.line}:${position.column}: ${String(message)}`;
  const at = thrownAt(error);
  return at === undefined ? String(message ?? error) : `${String(message)} (thrown at ${at})`;
}

/** kubemeta's folders a plugin calls into: a throw inside them is said at the plugin's line that called. */
const CALLED = ["sdk", "protocol", "kube"].map((folder) => `${KUBEMETA_ROOT}/${folder}/`);

/**
 * Where a module threw as it loaded (a file it reads missing, an SDK call it got wrong): the first frame of the stack
 * in neither kubemeta's SDK nor a package, the plugin's own line. A message alone does not say which of a plugin's
 * files, nor where.
 */
function thrownAt(error: unknown): string | undefined {
  if (!(error instanceof Error) || typeof error.stack !== "string") return undefined;
  for (const frame of error.stack.split("\n").slice(1)) {
    const where = /\(?(\/[^()\s]+:\d+:\d+)\)?\s*$/.exec(frame)?.[1];
    if (where && !CALLED.some((folder) => where.startsWith(folder)) && !where.includes("/node_modules/")) return where;
  }
  return undefined;
}
