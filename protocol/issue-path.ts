/**
 * Where in an input a mistake is, as kubemeta names it to whoever wrote the input: the config's errors and the client
 * library's refused options alike, `sinks[1].url`, `streams[0]`, `reconnect.maxMs` (an index in brackets, a key after
 * a dot), so that one spelling holds whichever of them a user reads.
 */

/** The path of `keys` (each an object's key or an array's index, from the outside in) under `prefix`, if any. */
export function issuePath(keys: readonly unknown[], prefix = ""): string {
  let path = prefix;
  for (const key of keys) path += typeof key === "number" ? `[${key}]` : path ? `.${String(key)}` : String(key);
  return path;
}
