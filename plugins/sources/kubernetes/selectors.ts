/**
 * The source's `labelSelector` and `fieldSelector`, checked as the API server parses them (apimachinery's
 * labels.Parse and fields.ParseSelector): one it refuses would make every list a 400, retried forever. Each function
 * says what is wrong, or undefined when the API server accepts the selector.
 */
import * as v from "valibot";
import { isDnsSubdomain } from "../../../protocol/node-token.ts";

/** A label key's name, or a label value when not empty: 63 characters at most, alphanumeric at both ends. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const MAX_NAME = 63;
const INT64_MAX = 2n ** 63n - 1n;

function labelKeyProblem(key: string): string | undefined {
  const parts = key.split("/");
  if (parts.length > 2) return `key "${key}" has more than one "/"`;
  const [prefix, name] = parts.length === 2 ? parts : [undefined, key];
  if (prefix !== undefined && !isDnsSubdomain(prefix))
    return `key "${key}": its prefix must be a lowercase DNS subdomain of at most 253 characters`;
  if (!(name!.length <= MAX_NAME && LABEL_NAME.test(name!)))
    return (
      `key "${key}": its name must be 1-${MAX_NAME} characters of letters, digits, "-", "_" and ".", ` +
      "starting and ending with a letter or digit"
    );
  return undefined;
}

function labelValueProblem(key: string, value: string): string | undefined {
  if (value === "" || (value.length <= MAX_NAME && LABEL_NAME.test(value))) return undefined;
  return (
    `value "${value}" of "${key}" must be empty or up to ${MAX_NAME} characters of letters, digits, "-", "_" ` +
    'and ".", starting and ending with a letter or digit'
  );
}

/** A word (a key, a value, `in`, `notin`), an operator or punctuation, or the end; `at` is where it starts. */
interface Token {
  kind: "word" | "symbol" | "end";
  text: string;
  at: number;
}

const SYMBOLS = "=!(),<>";
const isSpace = (char: string) => char === " " || char === "\t" || char === "\r" || char === "\n";

/** The selector's tokens: words run up to a space or a symbol; `==` and `!=` are one symbol each. */
function tokens(selector: string): Token[] {
  const found: Token[] = [];
  let i = 0;
  while (i < selector.length) {
    const char = selector[i]!;
    if (isSpace(char)) {
      i++;
    } else if (SYMBOLS.includes(char)) {
      const pair = selector.slice(i, i + 2);
      const text = pair === "==" || pair === "!=" ? pair : char;
      found.push({ kind: "symbol", text, at: i });
      i += text.length;
    } else {
      const start = i;
      while (i < selector.length && !isSpace(selector[i]!) && !SYMBOLS.includes(selector[i]!)) i++;
      found.push({ kind: "word", text: selector.slice(start, i), at: start });
    }
  }
  found.push({ kind: "end", text: "", at: selector.length });
  return found;
}

class SelectorProblem extends Error {}

/** `found` where something else belongs: says what it found, where, and what was expected. */
function unexpected(found: Token, expected: string): SelectorProblem {
  const what = found.kind === "end" ? "the end" : `"${found.text}" at character ${found.at + 1}`;
  return new SelectorProblem(`${what} where ${expected} belongs`);
}

/** Reads a label selector's requirements one by one, throwing SelectorProblem at the first thing wrong. */
class LabelSelectorReader {
  private next = 0;
  constructor(private readonly list: Token[]) {}

  private peek(): Token {
    return this.list[this.next]!;
  }
  private take(): Token {
    return this.list[this.next++]!;
  }
  private is(token: Token, symbol: string): boolean {
    return token.kind === "symbol" && token.text === symbol;
  }

  read(): void {
    if (this.peek().kind === "end") return;
    for (;;) {
      this.requirement();
      const after = this.take();
      if (after.kind === "end") return;
      if (!this.is(after, ",")) throw unexpected(after, '"," or the end');
    }
  }

  /** `[!]key`, or `key` with an operator and its value(s). */
  private requirement(): void {
    let token = this.take();
    const negated = this.is(token, "!");
    if (negated) token = this.take();
    if (token.kind !== "word") throw unexpected(token, negated ? "a key" : 'a key or "!"');
    const key = token.text;
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) throw new SelectorProblem(keyProblem);
    const following = this.peek();
    if (negated || following.kind === "end" || this.is(following, ",")) return;
    const operator = this.take();
    if (operator.kind === "word" && (operator.text === "in" || operator.text === "notin")) {
      for (const value of this.valueSet()) this.value(key, value);
    } else if (operator.kind === "symbol" && ["=", "==", "!="].includes(operator.text)) {
      this.value(key, this.exactValue());
    } else if (operator.kind === "symbol" && (operator.text === ">" || operator.text === "<")) {
      const value = this.exactValue();
      this.value(key, value);
      if (!/^\d+$/.test(value) || BigInt(value) > INT64_MAX)
        throw new SelectorProblem(`value "${value}" of "${key}" ${operator.text} must be an integer`);
    } else {
      throw unexpected(operator, "an operator (=, ==, !=, in, notin, >, <)");
    }
  }

  private value(key: string, value: string): void {
    const problem = labelValueProblem(key, value);
    if (problem) throw new SelectorProblem(problem);
  }

  /** The value after `=`, `==`, `!=`, `>` or `<`: empty when a comma or the end follows at once. */
  private exactValue(): string {
    const token = this.peek();
    if (token.kind === "end" || this.is(token, ",")) return "";
    this.take();
    if (token.kind !== "word") throw unexpected(token, "a value");
    return token.text;
  }

  /** `(a,b)`; values may be empty: `()`, `(a,)`, `(,b)`. */
  private valueSet(): string[] {
    const open = this.take();
    if (!this.is(open, "(")) throw unexpected(open, '"("');
    const values: string[] = [];
    let expectingValue = true;
    for (;;) {
      const token = this.take();
      if (this.is(token, ")")) {
        if (expectingValue) values.push("");
        return values;
      }
      if (this.is(token, ",")) {
        if (expectingValue) values.push("");
        expectingValue = true;
      } else if (token.kind === "word" && expectingValue) {
        values.push(token.text);
        expectingValue = false;
      } else {
        throw unexpected(token, expectingValue ? 'a value, "," or ")"' : '"," or ")"');
      }
    }
  }
}

/**
 * What the API server would refuse in a label selector: `key`, `!key`, `key=v`, `key==v`, `key!=v`,
 * `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`, separated by commas.
 */
export function labelSelectorProblem(selector: string): string | undefined {
  try {
    new LabelSelectorReader(tokens(selector)).read();
    return undefined;
  } catch (error) {
    if (error instanceof SelectorProblem) return error.message;
    throw error;
  }
}

/** The terms of a field selector: split at each comma not escaped by a backslash. */
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
  return terms;
}

/** Why a field selector's value (after its operator) is refused: `\` escapes only `\`, `,` and `=`, which need it. */
function fieldValueProblem(term: string, value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    if (char === "\\") {
      const escaped = value[++i];
      if (escaped === undefined) return `"${term}" ends with a lone "\\"`;
      if (!"\\,=".includes(escaped)) return `"${term}": "\\${escaped}" is no escape ("\\" escapes \\ , = only)`;
    } else if (char === "=" || char === ",") {
      return `"${term}": a "${char}" in a value is written "\\${char}"`;
    }
  }
  return undefined;
}

/**
 * What the API server would refuse in a field selector: terms `field=value`, `field==value`, `field!=value`,
 * separated by commas (empty terms are skipped); in a value, `\` escapes `\`, `,` and `=`. The API server also
 * refuses a field the resource does not support (each its own): that shows in `/readyz`, not here.
 */
export function fieldSelectorProblem(selector: string): string | undefined {
  for (const term of fieldTerms(selector)) {
    if (term === "") continue;
    // The first operator splits the term: no escape holds before it.
    const operator = /!=|==|=/.exec(term);
    if (!operator) return `"${term}" is not field=value, field==value or field!=value`;
    if (operator.index === 0) return `"${term}" names no field`;
    const problem = fieldValueProblem(term, term.slice(operator.index + operator[0].length));
    if (problem) return problem;
  }
  return undefined;
}

/** A selector the API server would refuse, with the reason `problemOf` gives. */
export const selectorCheck = (problemOf: (selector: string) => string | undefined) =>
  v.rawCheck<string>(({ dataset, addIssue }) => {
    const problem = dataset.typed ? problemOf(dataset.value) : undefined;
    if (problem) addIssue({ message: problem });
  });
