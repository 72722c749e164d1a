/**
 * JSON.parse without `metadata.managedFields`: the server-side-apply bookkeeping is a third
 * or more of a real object's bytes and the largest share of JSON.parse's objects, and the
 * slim copy never keeps it (core/slim/rules.ts refuses it anywhere). Removing its bytes from
 * the text first saves the parse and the garbage of what would be dropped at once.
 *
 * Only the `"managedFields"` member of an object that is the value of a `"metadata"` member
 * is removed, with its separating comma; every other byte stays, so the result is what
 * JSON.parse gives minus those members. The scan reads as little as it can: native
 * indexOf finds each `"metadata"` key, string contents are jumped over with indexOf, and
 * only the metadata objects' own structure is walked. A metadata object inside another
 * one's values is left alone (ObjectMeta has none), and so is a key spelled with escapes:
 * both are kept, never lost.
 *
 * Never a different answer than JSON.parse: a removed value is validated strictly (the
 * JSON grammar, strings included), so text that JSON.parse would refuse stays refused;
 * anything unexpected leaves the text whole, and a refused reduced text is parsed again
 * whole so that the error is the original's.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const METADATA_NAME = 'metadata"';
const MANAGED_FIELDS = '"managedFields"';
const MANAGED_FIELDS_NAME = 'managedFields"';
/** What may follow a backslash in a JSON string, `u` aside. */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const LITERALS = new Map([
  [0x74, "true"],
  [0x66, "false"],
  [0x6e, "null"],
]);

/** JSON.parse(text), but objects that are the value of a `metadata` member come without `managedFields`. */
export function parseSkimmed(text: string): unknown {
  const reduced = skimManagedFields(text);
  if (reduced === text) return JSON.parse(text);
  try {
    return JSON.parse(reduced);
  } catch {
    // Cannot happen when the scan is right (it removes only valid members); if it does,
    // the whole text decides, and its error is the one to report.
    return JSON.parse(text);
  }
}

/**
 * `text` without the `managedFields` members of its metadata objects; `text` itself when it has none or is not as
 * expected there.
 */
export function skimManagedFields(text: string): string {
  if (text.indexOf(MANAGED_FIELDS_NAME) < 0) return text;
  const cuts: number[] = [];
  let from = 1;
  // Searched without its opening quote: indexOf leaps to a rare first character, and `"` is everywhere in JSON.
  for (let name = text.indexOf(METADATA_NAME, from); name >= 0; name = text.indexOf(METADATA_NAME, from)) {
    from = name + METADATA_NAME.length;
    const at = name - 1;
    // An escaped quote before it: the bytes are inside a string (an annotation holding JSON).
    if (text.charCodeAt(at) !== QUOTE || escaped(text, at)) continue;
    let i = skipSpace(text, from);
    if (text.charCodeAt(i) !== COLON) continue; // a value, not a key
    i = skipSpace(text, i + 1);
    if (text.charCodeAt(i) !== OPEN_OBJECT) continue;
    // Resuming after the object keeps the scan linear; ObjectMeta holds no metadata of its own.
    from = scanMetadata(text, i, cuts);
    if (from < 0) return text;
  }
  return cuts.length === 0 ? text : cut(text, cuts);
}

/**
 * Walks the members of the metadata object opening at `i`, pushing [start, end) ranges of
 * its managedFields members onto `cuts`. Returns the index after the object, -1 when it is
 * not well formed.
 */
function scanMetadata(text: string, open: number, cuts: number[]): number {
  let i = skipSpace(text, open + 1);
  if (text.charCodeAt(i) === CLOSE_OBJECT) return i + 1;
  let kept = false;
  let comma = -1;
  for (;;) {
    const key = i;
    if (text.charCodeAt(key) !== QUOTE) return -1;
    const keyEnd = stringEnd(text, key);
    if (keyEnd < 0) return -1;
    const managed = keyEnd - key === MANAGED_FIELDS.length && text.startsWith(MANAGED_FIELDS, key);
    i = skipSpace(text, keyEnd);
    if (text.charCodeAt(i) !== COLON) return -1;
    i = skipSpace(text, i + 1);
    const end = managed ? strictValueEnd(text, i) : valueEnd(text, i);
    if (end < 0) return -1;
    i = skipSpace(text, end);
    const next = text.charCodeAt(i);
    if (next !== COMMA && next !== CLOSE_OBJECT) return -1;
    if (!managed) kept = true;
    // After a kept member the comma before goes with it; first ones take the comma after.
    else if (kept) cuts.push(comma, end);
    else cuts.push(key, next === COMMA ? i + 1 : end);
    if (next === CLOSE_OBJECT) return i + 1;
    comma = i;
    i = skipSpace(text, i + 1);
  }
}

/** The text without the [start, end) ranges of `cuts`, which come in order. */
function cut(text: string, cuts: number[]): string {
  // Concatenation makes a rope that JSON.parse flattens in one copy; join would copy as well, into a new array first.
  let reduced = text.slice(0, cuts[0]);
  for (let k = 1; k < cuts.length - 1; k += 2) reduced += text.slice(cuts[k], cuts[k + 1]);
  return reduced + text.slice(cuts[cuts.length - 1]);
}

function escaped(text: string, quote: number): boolean {
  let k = quote - 1;
  while (text.charCodeAt(k) === BACKSLASH) k--;
  return (quote - 1 - k) % 2 === 1;
}

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** From an escaped quote to the end of its string: one regular expression run, not an indexOf per escaped quote. */
const REST_OF_STRING = /[^"\\]*(?:\\[\s\S][^"\\]*)*"/y;

/** After the string opening at `i`; its contents are left to JSON.parse (they are kept). */
function stringEnd(text: string, i: number): number {
  const quote = text.indexOf('"', i + 1);
  if (quote < 0) return -1;
  if (!escaped(text, quote)) return quote + 1;
  // Escaped quotes come in crowds (an annotation holding JSON).
  REST_OF_STRING.lastIndex = quote + 1;
  return REST_OF_STRING.test(text) ? REST_OF_STRING.lastIndex : -1;
}

/** After the value starting at `i`, by its brackets; a kept value, so its validity is left to JSON.parse. */
function valueEnd(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === QUOTE) return stringEnd(text, i);
  if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) {
    let j = i;
    for (; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c === COMMA || c === CLOSE_OBJECT || c === CLOSE_ARRAY || c <= 0x20) break;
    }
    return j > i ? j : -1;
  }
  let depth = 0;
  for (let j = i; j < text.length; ) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) {
      j = stringEnd(text, j);
      if (j < 0) return -1;
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
    else if ((c === CLOSE_OBJECT || c === CLOSE_ARRAY) && --depth === 0) return j + 1;
    j++;
  }
  return -1;
}

/**
 * After the value starting at `i`, checked against the JSON grammar as JSON.parse would:
 * it is removed, so nothing else will check it. -1 when it is not valid JSON.
 */
function strictValueEnd(text: string, i: number): number {
  // The closers of the open containers, innermost last: no recursion, whatever the depth.
  const open: number[] = [];
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = strictStringEnd(text, i);
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) === close) i++;
      else {
        open.push(close);
        i = close === CLOSE_OBJECT ? memberValue(text, i) : i;
        if (i < 0) return -1;
        continue;
      }
    } else {
      const literal = LITERALS.get(c);
      if (literal === undefined) i = numberEnd(text, i);
      else i = text.startsWith(literal, i) ? i + literal.length : -1;
    }
    if (i < 0) return -1;
    // After a value: close what it ends, or move to the next element or member.
    for (;;) {
      if (open.length === 0) return i;
      i = skipSpace(text, i);
      const c = text.charCodeAt(i);
      const close = open[open.length - 1];
      if (c === close) {
        open.pop();
        i++;
        continue;
      }
      if (c !== COMMA) return -1;
      i = skipSpace(text, i + 1);
      if (close === CLOSE_OBJECT) i = memberValue(text, i);
      if (i < 0) return -1;
      break;
    }
  }
}

/** From a member's key at `i` to its value: key, colon, spaces. */
function memberValue(text: string, i: number): number {
  if (text.charCodeAt(i) !== QUOTE) return -1;
  i = strictStringEnd(text, i);
  if (i < 0) return -1;
  i = skipSpace(text, i);
  if (text.charCodeAt(i) !== COLON) return -1;
  return skipSpace(text, i + 1);
}

function strictStringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j + 1;
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) continue;
    const escaped = text.charCodeAt(++j);
    if (escaped === 0x75) {
      for (let k = 0; k < 4; k++) if (!isHex(text.charCodeAt(++j))) return -1;
    } else if (!SIMPLE_ESCAPES.has(escaped)) return -1;
  }
  return -1;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** After the number at `i`: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function numberEnd(text: string, i: number): number {
  if (text.charCodeAt(i) === 0x2d) i++;
  if (text.charCodeAt(i) === 0x30) i++;
  else if (isDigit(text.charCodeAt(i))) i = digitsEnd(text, i);
  else return -1;
  if (text.charCodeAt(i) === 0x2e) {
    if (!isDigit(text.charCodeAt(i + 1))) return -1;
    i = digitsEnd(text, i + 1);
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    i = digitsEnd(text, i);
  }
  return i;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function digitsEnd(text: string, i: number): number {
  while (isDigit(text.charCodeAt(i))) i++;
  return i;
}
