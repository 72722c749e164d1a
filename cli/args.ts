import { type ParseArgsOptionsConfig, parseArgs } from "node:util";

/** What node:util's parseArgs says of bad arguments, on one line (it writes some over three). */
export function argumentProblem(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\s*\n\s*/g, " ");
}

/**
 * parseArgs, strict, that also refuses an option taking one value given twice (`--config a.yaml --config b.yaml`):
 * parseArgs keeps the last one silently, so the other file or port would be dropped unsaid. Throws as parseArgs does.
 * A flag given twice says the same thing twice, and an option `multiple` takes each: both are left alone.
 */
export function parseOptions<const O extends ParseArgsOptionsConfig>(args: string[], options: O) {
  const { values, tokens } = parseArgs({ args, options, strict: true, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const option = options[token.name];
    if (option?.type !== "string" || option.multiple) continue;
    // Named as given, the value left out: it may be a token.
    if (seen.has(token.name)) throw new Error(`${token.rawName}: given more than once; give it once`);
    seen.add(token.name);
  }
  return values;
}
