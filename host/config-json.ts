/**
 * Where a JSON config stops being JSON. Bun's JSON.parse says why (`Unexpected comma at the end of array expression`)
 * but not where; YAML's parser, which reads most JSON, accepts much that JSON does not (a trailing comma, a comment,
 * single quotes, an unquoted key), so it cannot say either. The text is scanned again, by JSON's grammar (RFC 8259),
 * up to the first character it does not allow.
 */

/** A number as JSON writes it, from where the scan stands: no leading zero, no `+`, digits after a point. */
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const ESCAPED = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);
const HEX4 = /^[\da-fA-F]{4}$/;

/** " at line L, column C" where `text` stops being JSON (its end, when it ends too early); "" if it is JSON. */
export function jsonErrorPlace(text: string): string {
  const at = jsonErrorOffset(text);
  if (at === undefined) return "";
  const before = text.slice(0, at);
  const lineStart = before.lastIndexOf("\n") + 1;
  const line = before.split("\n").length;
  // In characters, as an editor counts them: a character outside the BMP is two of JavaScript's.
  return ` at line ${line}, column ${[...before.slice(lineStart)].length + 1}`;
}

/**
 * The offset of the first character JSON does not allow there, or `text.length` for a text that ends too early;
 * undefined for JSON. Nesting is kept on a stack, not in calls: a config of `[[[[…` nests as deep as it is long.
 */
function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const skip = () => {
    while (i < text.length && WHITESPACE.has(text[i]!)) i++;
  };
  const string = (): boolean => {
    if (text[i] !== '"') return false;
    for (i++; i < text.length; i++) {
      const c = text[i]!;
      if (c === '"') {
        i++;
        return true;
      }
      // A control character (a tab, a line break) is written escaped in a JSON string.
      if (c < " ") return false;
      if (c !== "\\") continue;
      i++;
      if (text[i] === "u") {
        if (!HEX4.test(text.slice(i + 1, i + 5))) return false;
        i += 4;
      } else if (!ESCAPED.has(text[i] ?? "")) return false;
    }
    return false;
  };
  const scalar = (): boolean => {
    if (text[i] === '"') return string();
    const word = ["true", "false", "null"].find((literal) => text.startsWith(literal, i));
    if (word !== undefined) {
      i += word.length;
      return true;
    }
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) return false;
    i = NUMBER.lastIndex;
    return true;
  };
  /** A key and its colon, after an object's `{` or a `,` in it. */
  const key = (): boolean => {
    skip();
    if (!string()) return false;
    skip();
    if (text[i] !== ":") return false;
    i++;
    return true;
  };
  /** The open objects (`{`) and arrays (`[`) around the scan. */
  const open: string[] = [];
  for (;;) {
    skip();
    const c = text[i];
    if (c === "{" || c === "[") {
      i++;
      skip();
      if (text[i] !== (c === "{" ? "}" : "]")) {
        open.push(c);
        if (c === "{" && !key()) return i;
        continue;
      }
      i++;
    } else if (!scalar()) return i;
    // A value ended: the containers it closes, then a `,` and the next value, or the end of the text.
    for (;;) {
      skip();
      const inside = open.at(-1);
      if (inside === undefined) return i === text.length ? undefined : i;
      if (text[i] === ",") {
        i++;
        if (inside === "{" && !key()) return i;
        break;
      }
      if (text[i] !== (inside === "{" ? "}" : "]")) return i;
      i++;
      open.pop();
    }
  }
}
