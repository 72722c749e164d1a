/**
 * The checks of a config that span its plugin entries: a name used twice in a section, a claim (Declaration.claims)
 * a second entry makes, and whether what a plugin's claims() and rbac() return is the list it must be.
 */
import type { AnyDeclaration, PolicyRule } from "../sdk/contract.ts";
import type { Resolved } from "./config-entries.ts";
import { thrownText, type ConfigIssue } from "./config-issues.ts";

export function checkUniqueNames(section: string, names: (string | undefined)[], issues: ConfigIssue[]) {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    if (seen.has(name))
      issues.push({ path: `${section}[${i}].name`, message: `"${name}" is used twice; give each entry its own name` });
    seen.add(name);
  });
}

/** What one entry claims (Declaration.claims) no other may: the second to claim it is refused, naming the first. */
export function checkClaims(
  entries: (readonly [string, Resolved<AnyDeclaration> | undefined])[],
  issues: ConfigIssue[],
) {
  const holders = new Map<string, string>();
  for (const [path, entry] of entries) {
    const call = entry && (() => entry.declaration.claims?.(entry.config) ?? []);
    const claims = call && listReturned(path, "claims()", call, CLAIMS, issues);
    /** This entry's claims each earlier entry holds: one issue per holder (a source's every watch may be one's). */
    const taken = new Map<string, string[]>();
    for (const claim of claims ?? []) {
      const holder = holders.get(claim);
      if (holder) taken.set(holder, [...(taken.get(holder) ?? []), claim]);
      else holders.set(claim, path);
    }
    for (const [holder, [first, ...more]] of taken) {
      const what = more.length === 0 ? `${first} is` : `${first} and ${more.length} more of its claims are`;
      issues.push({ path, message: `${what} claimed by ${holder} already: a config holds one such entry` });
    }
  }
}

/**
 * Whether each entry's rbac() (Declaration.rbac) gives PolicyRules: `main.ts rbac` prints them, and one that is none
 * (an `async rbac`'s Promise) would end it in a TypeError, after a config every other command took.
 */
export function checkRbac(entries: (readonly [string, Resolved<AnyDeclaration> | undefined])[], issues: ConfigIssue[]) {
  for (const [path, entry] of entries) {
    const rbac = entry?.declaration.rbac;
    if (rbac) listReturned(path, "rbac()", () => rbac(entry.config), RULES, issues);
  }
}

interface ListRule<T> {
  is(item: unknown): item is T;
  /** What the list must hold, as its refusal says it. */
  rule: string;
}

const CLAIMS: ListRule<string> = {
  is: (item): item is string => typeof item === "string",
  rule: "not a list of strings",
};

const RULES: ListRule<PolicyRule> = {
  is: (item): item is PolicyRule =>
    typeof item === "object" &&
    item !== null &&
    ["apiGroups", "resources", "verbs"].every((key) => {
      const list = (item as Record<string, unknown>)[key];
      return Array.isArray(list) && list.every((each) => typeof each === "string");
    }),
  rule: "not a list of PolicyRules ({ apiGroups, resources, verbs }, each a list of strings)",
};

/**
 * What a plugin's `call` (its claims() or rbac()) returned, when it is a list of what `list` says; else undefined, and
 * why in `issues` (a plugin in JavaScript, or one run unchecked, meets no type): the Promise of an async one would end
 * the whole check as a TypeError, a string be taken letter by letter.
 */
function listReturned<T>(
  path: string,
  name: string,
  call: () => unknown,
  list: ListRule<T>,
  issues: ConfigIssue[],
): T[] | undefined {
  let returned: unknown;
  try {
    returned = call();
  } catch (error) {
    issues.push({ path, message: `its plugin's ${name} failed: ${thrownText(error)}` });
    return undefined;
  }
  const said = (what: string, hint = "") => {
    issues.push({ path, message: `its plugin's ${name} returned ${what}, ${list.rule}${hint}` });
    return undefined;
  };
  if (returned instanceof Promise) {
    // Its own failure would be nobody's: an unhandled rejection.
    returned.catch(() => {});
    return said("a Promise", `: ${name} says them at once (make it synchronous)`);
  }
  const other = notAList(returned, list.is);
  return other === undefined ? (returned as T[]) : said(other);
}

/** What a plugin's call returned, as a refusal says it, unless it is a list of what `is` accepts: then undefined. */
export function notAList(returned: unknown, is: (item: unknown) => boolean): string | undefined {
  if (typeof returned === "string") return `the string ${JSON.stringify(returned)}`;
  // typeof says "object" of null, which a plugin in JavaScript returns for nothing to say.
  if (returned === null) return "null";
  if (!Array.isArray(returned)) return typeof returned === "object" ? "an object" : String(returned);
  const at = returned.findIndex((item) => !is(item));
  if (at >= 0) return `a list holding ${JSON.stringify(returned[at]) ?? String(returned[at])}`;
  return undefined;
}
