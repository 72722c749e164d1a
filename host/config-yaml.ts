/**
 * A YAML config's text parsed with its `${NAME}`s in flow collections too. In a flow collection
 * (`http: {port: ${PORT}}`, `tokens: [${TOKEN}]`) the braces of `${…}` are YAML's own, and the text does not parse,
 * where the same line in block style does. Such a text is parsed again with those braces hidden as characters YAML
 * reads as any other, and shown again in the strings (keys too) it parsed to. The variables are replaced later, in
 * the strings: a value, whatever it holds (`: `, `#`, `]`), stays one string and changes no structure.
 */

/** Private use: never in a config (a text that holds either is parsed as written only), and plain to YAML. */
const HIDDEN_OPEN = "\uE001";
const HIDDEN_CLOSE = "\uE002";

/** `${NAME}` (and `$${`, a literal) on one line: `${` and the first `}` after it. */
const VARIABLE = /\$\{([^}\n]*)\}/g;

/**
 * The config parsed (`value`) or why it is not YAML (`error`), and the text that was parsed: `text` itself, or with
 * its variables' braces hidden when `text` does not parse as it is. Hiding them keeps every line and column where it
 * was, so the hidden text's error is said at the place in `text`; a variable no longer breaks it, so it is the
 * mistake left to fix. Strings (keys too) hold `${` as written either way.
 */
export function parseYamlConfig(text: string): { parsed: string } & ({ value: unknown } | { error: unknown }) {
  try {
    return { parsed: text, value: Bun.YAML.parse(text) };
  } catch (error) {
    const hidden = text.replace(VARIABLE, (_, name: string) => `$${HIDDEN_OPEN}${name}${HIDDEN_CLOSE}`);
    if (hidden === text || text.includes(HIDDEN_OPEN) || text.includes(HIDDEN_CLOSE)) return { parsed: text, error };
    try {
      return { parsed: hidden, value: shown(Bun.YAML.parse(hidden), new Map()) };
    } catch (hiddenError) {
      return { parsed: hidden, error: hiddenError };
    }
  }
}

/** A string parsed from a text with hidden braces, as written (a key path made of such keys too). */
export function showBraces(text: string): string {
  return text.replaceAll(HIDDEN_OPEN, "{").replaceAll(HIDDEN_CLOSE, "}");
}

/**
 * `value` with the braces in its strings and keys shown. `copies`: an alias makes one value appear in several places,
 * or inside itself; each is copied once, and the copies refer to each other as the values did.
 */
function shown(value: unknown, copies: Map<object, unknown>): unknown {
  if (typeof value === "string") return showBraces(value);
  if (typeof value !== "object" || value === null) return value;
  const known = copies.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    copies.set(value, copy);
    for (const item of value) copy.push(shown(item, copies));
    return copy;
  }
  const copy = {};
  copies.set(value, copy);
  // Defined, not assigned: a key `__proto__` is a key like any other, as the parser made it.
  for (const [key, item] of Object.entries(value))
    Object.defineProperty(copy, showBraces(key), {
      value: shown(item, copies),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return copy;
}
