/**
 * Label and field selectors with the grammar of k8s.io/apimachinery/pkg/labels and
 * pkg/fields: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, `a>1`,
 * `a<1` for labels; `a=b`, `a==b`, `a!=b` for fields.
 */
import type { KubeObject } from "../sdk/model.ts";
import type { ResourceType } from "./resource-types.ts";

export type Labels = Record<string, string>;
export type Matcher = (values: Labels) => boolean;

/** A selector that cannot be parsed or names an unsupported field: the API server answers 400. */
export class SelectorError extends Error {}

const KEY = "[A-Za-z0-9][-A-Za-z0-9_./]*";
const VALUE = "[-A-Za-z0-9_.]*";
const EXISTS = new RegExp(`^(${KEY})$`);
const NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const NUMERIC = new RegExp(`^(${KEY})\\s*(>|<)\\s*(-?\\d+)$`);

/** Splits on commas that are not inside `( )`. */
function requirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const char = selector[i];
    if (char === "(") depth++;
    else if (char === ")") depth--;
    else if (char === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((part) => part.trim()).filter((part) => part !== "");
}

function labelRequirement(text: string): Matcher {
  const equality = EQUALITY.exec(text);
  if (equality) {
    const [, key, op, value] = equality as unknown as [string, string, string, string];
    return op === "!=" ? (labels) => labels[key] !== value : (labels) => labels[key] === value;
  }
  const membership = SET.exec(text);
  if (membership) {
    const [, key, op, list] = membership as unknown as [string, string, string, string];
    const values = new Set(list.split(",").map((value) => value.trim()));
    return op === "in"
      ? (labels) => labels[key] !== undefined && values.has(labels[key])
      : (labels) => labels[key] === undefined || !values.has(labels[key]);
  }
  const notExists = NOT_EXISTS.exec(text);
  if (notExists) {
    const key = notExists[1]!;
    return (labels) => labels[key] === undefined;
  }
  const exists = EXISTS.exec(text);
  if (exists) {
    const key = exists[1]!;
    return (labels) => labels[key] !== undefined;
  }
  const numeric = NUMERIC.exec(text);
  if (numeric) {
    const [, key, op, bound] = numeric as unknown as [string, string, string, string];
    const limit = Number(bound);
    return (labels) => {
      const value = labels[key];
      if (value === undefined || !/^-?\d+$/.test(value)) return false;
      return op === ">" ? Number(value) > limit : Number(value) < limit;
    };
  }
  throw new SelectorError(`unable to parse requirement: found '${text}', expected: a valid label selector requirement`);
}

function all(matchers: Matcher[]): Matcher | undefined {
  if (matchers.length === 0) return undefined;
  return (values) => matchers.every((matches) => matches(values));
}

/** Undefined for an empty selector (everything matches). */
export function parseLabelSelector(selector: string | null): Matcher | undefined {
  return selector ? all(requirements(selector).map(labelRequirement)) : undefined;
}

/**
 * fields.splitTerms: on the commas no `\` escapes; nothing trimmed (a field name with a space is no field). The test
 * API server's own, not the kubernetes source's (its selectors.ts): sharing the client's parser, it would agree with
 * it by construction.
 */
function fieldTerms(selector: string): string[] {
  const terms: string[] = [];
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    if (selector[i] === "\\") i++;
    else if (selector[i] === ",") {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms.filter((term) => term !== "");
}

/** fields.UnescapeValue: `\\`, `\,` and `\=` stand for themselves; other escapes, a bare `,` or `=`: refused. */
function unescapeFieldValue(selector: string, value: string): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    if (char === "\\") {
      const next = value[++i];
      if (next !== "\\" && next !== "," && next !== "=")
        throw new SelectorError(`invalid selector: '${selector}'; invalid escape sequence`);
      out += next;
    } else if (char === "," || char === "=") {
      throw new SelectorError(`invalid selector: '${selector}'; unescaped '${char}' in a value`);
    } else out += char;
  }
  return out;
}

/** Undefined for an empty selector. Throws SelectorError for a field the type does not index. */
export function parseFieldSelector(selector: string | null, type: ResourceType): Matcher | undefined {
  if (!selector) return undefined;
  const supported = new Set(["metadata.name", "metadata.namespace", ...type.fieldLabels]);
  const matchers = fieldTerms(selector).map((text): Matcher => {
    // fields.splitTerm: the first operator, `!=` and `==` before `=`.
    const match = /^(.*?)(!=|==|=)(.*)$/s.exec(text);
    if (!match) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${text}'`);
    const [, field, op] = match as unknown as [string, string, string];
    const value = unescapeFieldValue(selector, match[3]!);
    if (!supported.has(field)) throw new SelectorError(`field label not supported: ${field}`);
    return op === "!=" ? (fields) => (fields[field] ?? "") !== value : (fields) => (fields[field] ?? "") === value;
  });
  return all(matchers);
}

function fieldText(value: unknown): string {
  return value === undefined || value === null ? "" : String(value);
}

function at(object: KubeObject, path: string): unknown {
  let value: unknown = object;
  for (const part of path.split(".")) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}

/** The values the type's field selectors match against, taken once when the object is written. */
export function selectableFields(object: KubeObject, type: ResourceType): Labels {
  const fields: Labels = {
    "metadata.name": fieldText(object.metadata?.name),
    "metadata.namespace": fieldText(object.metadata?.namespace),
  };
  for (const label of type.fieldLabels) {
    const value = at(object, label);
    fields[label] =
      label === "spec.hostNetwork" || label === "spec.unschedulable" ? String(value === true) : fieldText(value);
  }
  return fields;
}
