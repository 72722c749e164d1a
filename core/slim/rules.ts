/**
 * The slim rules of the config (`slim:` in README "Slim rules"): the annotations every kind
 * keeps, and per API kind the paths its slim copy keeps besides its built-in fields and the
 * path that binds it to a node. Rules only ever add to a slim copy; what is never published
 * stays out whatever they say, checked here once so that the config's validation and the
 * core refuse the same things:
 * - kind, apiVersion and metadata are fixed (annotations come from the allow-lists);
 * - `managedFields` and the last-applied-configuration annotation, anywhere in a kept subtree;
 * - the `value` and `valueFrom` of every entry of an `env` list in a kept subtree (containers,
 *   init and ephemeral containers, pod templates of any kind);
 * - Secret `data`/`stringData`, ConfigMap `data`/`binaryData`, and a Secret's annotations.
 * A rule that names one of them (a path through `managedFields` or to an env entry's value, an allow-list entry that
 * is the last-applied key) is refused; one whose subtree or prefix merely holds them keeps everything else.
 *
 * A path through a list keeps the rest of the path in each of its items (keep-paths.ts).
 */
import { isDnsSubdomain } from "../../protocol/node-token.ts";

/** The config's `slim:` section: the annotations every kind keeps, and the rules by kind. */
export interface SlimOptions {
  /** Annotation keys kept in the slim copy: exact keys, or prefixes ending in "/" or "*" ("*" alone keeps all). */
  annotationAllowList?: string[];
  /** Rules by API kind ("Pod", "Rollout"); this module's header says what they can and cannot do. */
  kinds?: Record<string, SlimRule>;
}

export interface SlimRule {
  /** Dot paths ("spec.strategy.canary.steps") whose subtrees are copied as they are to the same paths. */
  keep?: string[];
  /** Annotation keys kept besides the global allow-list, in the same form. */
  annotations?: string[];
  /** Dot path of the node name the object is bound to: it goes to `node/<value>`, and the path is kept. */
  node?: string;
}

/** Holds the whole applied manifest, Secret data and env values included: never published. */
export const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** A rule compiled for the data path: paths split once, allow-lists merged into one filter. */
export interface CompiledRule {
  /** The kept paths, node path included, sorted so that the order they were written in changes no digest. */
  keep: string[][];
  /** Global and own allow-list; undefined when no annotation is kept. */
  annotations: ((key: string) => boolean) | undefined;
  node: string[] | undefined;
}

export interface CompiledRules {
  annotations: ((key: string) => boolean) | undefined;
  kinds: Map<string, CompiledRule>;
}

/** Kinds that hold configuration and credentials: published only when a rule names them. */
const ONLY_WHEN_NAMED = new Set(["Secret", "ConfigMap"]);
/** Top-level fields never kept, by kind: the payloads of Secrets and ConfigMaps. */
const NEVER_KEPT = new Map([
  ["Secret", ["data", "stringData"]],
  ["ConfigMap", ["data", "binaryData"]],
]);
/** Every slim copy has these, built the same way for every kind. */
const FIXED = new Set(["kind", "apiVersion", "metadata"]);
/** Kinds routed by a node of their own. */
const SELF_ROUTED = new Set(["Pod", "Node"]);
/** What an `env` entry holds besides its name: the value, or where it comes from (a Secret's key). */
const ENV_VALUES: ReadonlySet<string> = new Set(["value", "valueFrom"]);
/** A JSON field name as Kubernetes and CRDs write them; `__proto__` cannot be one. */
const KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;

export interface RuleProblem {
  /** Inside the rule: `keep[1]`, `node`, `annotations`, `annotations[0]`; `[0]` for an entry of the global list. */
  path: string;
  message: string;
}

/** Why the rule of `kind` cannot be applied as written; empty when it can. */
export function ruleProblems(kind: string, rule: SlimRule): RuleProblem[] {
  const problems: RuleProblem[] = [];
  rule.keep?.forEach((path, i) => {
    const message = pathProblem(kind, path);
    if (message !== undefined) problems.push({ path: `keep[${i}]`, message });
  });
  if (rule.node !== undefined) {
    const message = nodeProblem(kind, rule.node);
    if (message !== undefined) problems.push({ path: "node", message });
  }
  if (kind === "Secret" && (rule.annotations?.length ?? 0) > 0)
    problems.push({ path: "annotations", message: "a Secret keeps no annotations: tools keep credentials there too" });
  else
    for (const problem of allowListProblems(rule.annotations))
      problems.push({ ...problem, path: `annotations${problem.path}` });
  return problems;
}

/** The name of an annotation key: up to 63 letters, digits, "-", "_" and ".", starting and ending alphanumeric. */
const KEY_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** The start of such a name: what an entry ending in "*" may hold of it. */
const KEY_NAME_START = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]{0,62})?$/;
/** The start of a name or of a DNS prefix (up to 253 characters): an entry ending in "*" before any "/". */
const KEY_START = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]{0,252})?$/;

/**
 * True when some annotation key is `entry` (`start`: begins with it). A key is the API server's: a name, or a DNS
 * prefix, "/" and a name, checked lowercased (apimachinery's ValidateAnnotations), so `Example.com/x` is one.
 */
function someKeyMatches(entry: string, start: boolean): boolean {
  const slash = entry.indexOf("/");
  if (slash < 0) return (start ? KEY_START : KEY_NAME).test(entry);
  const name = entry.slice(slash + 1);
  return isDnsSubdomain(entry.slice(0, slash).toLowerCase()) && (start ? KEY_NAME_START : KEY_NAME).test(name);
}

/** True when some annotation key is the entry, or begins with it for a prefix ("…/", "…*"). */
function someKeyMatchesEntry(entry: string): boolean {
  return entry.endsWith("*") ? someKeyMatches(entry.slice(0, -1), true) : someKeyMatches(entry, entry.endsWith("/"));
}

/**
 * Why entries of an annotation allow-list (the global one, or a rule's) cannot be applied: one that names the
 * last-applied key, alone or as a prefix ending in "*", and one that no annotation key can match (a glob "*" not at
 * the end, a space, a name ending in "-"), which would keep nothing, unseen. A prefix that merely covers the
 * last-applied key ("kubectl.kubernetes.io/", "*") is fine: the key is never kept whatever the list says. Paths are
 * `[i]`.
 */
export function allowListProblems(allowList: readonly string[] | undefined): RuleProblem[] {
  const problems: RuleProblem[] = [];
  allowList?.forEach((entry, i) => {
    if (entry === LAST_APPLIED || entry === `${LAST_APPLIED}*`)
      problems.push({
        path: `[${i}]`,
        message: `"${entry}" is never published: it holds the whole applied manifest, Secret data and env values too`,
      });
    else if (!someKeyMatchesEntry(entry))
      problems.push({
        path: `[${i}]`,
        message:
          `"${entry}" matches no annotation key: a key is [prefix/]name, the prefix a DNS name (any case), the name ` +
          'up to 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit; an entry is a key, ' +
          'or the start of one ending in "/" or "*"',
      });
  });
  return problems;
}

function pathProblem(kind: string, path: string): string | undefined {
  const keys = path.split(".");
  if (!keys.every((key) => KEY.test(key)))
    return (
      `"${path}" is not a dot path of simple keys (each a letter, then letters, digits, "_" or "-"), ` +
      'such as "spec.replicas"'
    );
  const first = keys[0]!;
  if (FIXED.has(first))
    return `"${path}": kind, apiVersion and metadata are kept the same way for every kind (annotations: allow-lists)`;
  if (NEVER_KEPT.get(kind)?.includes(first)) return `"${path}": a ${kind}'s ${first} is never published`;
  if (keys.includes("managedFields")) return `"${path}": managedFields is never published`;
  const envValue = keys.findIndex((key, i) => i > 0 && keys[i - 1] === "env" && ENV_VALUES.has(key));
  if (envValue >= 0) return `"${path}": the ${keys[envValue]} of an env entry is never published`;
  return undefined;
}

function nodeProblem(kind: string, path: string): string | undefined {
  if (SELF_ROUTED.has(kind)) return `${kind} is routed by its own node (a Pod's spec.nodeName, a Node's name)`;
  return pathProblem(kind, path);
}

const NO_RULES: CompiledRules = { annotations: undefined, kinds: new Map() };
const compiled = new WeakMap<SlimOptions, CompiledRules>();

/**
 * The rules of `options`, compiled once per options object (the pipeline passes the same one every time). Parts that
 * ruleProblems refuses are left out, so options that never went through the config's validation are safe too.
 */
export function compileRules(options: SlimOptions | undefined): CompiledRules {
  if (options === undefined) return NO_RULES;
  let rules = compiled.get(options);
  if (rules === undefined) {
    const global = options.annotationAllowList ?? [];
    const kinds = new Map<string, CompiledRule>();
    for (const [kind, rule] of Object.entries(options.kinds ?? {})) {
      const node = rule.node !== undefined && nodeProblem(kind, rule.node) === undefined ? rule.node : undefined;
      const paths = new Set([...(rule.keep ?? []), ...(node === undefined ? [] : [node])]);
      const annotations = kind === "Secret" ? [] : [...global, ...(rule.annotations ?? [])];
      kinds.set(kind, {
        keep: [...paths]
          .filter((path) => pathProblem(kind, path) === undefined)
          .sort()
          .map((path) => path.split(".")),
        annotations: annotationFilter(annotations),
        node: node?.split("."),
      });
    }
    rules = { annotations: annotationFilter(global), kinds };
    compiled.set(options, rules);
  }
  return rules;
}

/** False for a Secret or ConfigMap that no rule names: the core drops those. */
export function isPublished(kind: string, options: SlimOptions | undefined): boolean {
  return !ONLY_WHEN_NAMED.has(kind) || compileRules(options).kinds.has(kind);
}

/** The filter of an allow-list: exact keys, or prefixes ending in "/" or "*" ("*" alone keeps all). */
function annotationFilter(allowList: readonly string[]): ((key: string) => boolean) | undefined {
  if (allowList.length === 0) return undefined;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const entry of allowList) {
    if (entry.endsWith("*")) prefixes.push(entry.slice(0, -1));
    else if (entry.endsWith("/")) prefixes.push(entry);
    else exact.add(entry);
  }
  return (key) => key !== LAST_APPLIED && (exact.has(key) || prefixes.some((prefix) => key.startsWith(prefix)));
}
