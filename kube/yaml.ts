/**
 * YAML as Kubernetes tools read it (client-node's parser, js-yaml), with errors that say where and never what is
 * written there: js-yaml's message quotes the lines around the error, a token with them.
 */
/**
 * Where js-yaml's error `err` says the text stops being YAML, as " at line L, column C (reason)": either part, or
 * nothing, when it does not say. Its reason is kept only when it is plain words: some reasons quote a tag or an
 * alias, which come from the file (`token: !abc…` is a tag).
 */
export function yamlErrorPlace(err: unknown): string {
  const { mark, reason } = (typeof err === "object" && err !== null ? err : {}) as {
    mark?: { line?: unknown; column?: unknown };
    reason?: unknown;
  };
  const { line, column } = mark ?? {};
  const at = typeof line === "number" && typeof column === "number" ? ` at line ${line + 1}, column ${column + 1}` : "";
  const why = typeof reason === "string" && /^[a-z][a-z ,]*$/.test(reason) ? ` (${reason})` : "";
  return at + why;
}

/**
 * Where `text` stops being YAML for client-node's parser (yamlErrorPlace), or undefined when it reads it. The parser
 * is loaded here, for a config that does not parse, not with the config's module: client-node is half of a start's
 * CPU, which rbac, new-epoch and a --check naming no kubeconfig need none of.
 */
export async function yamlProblemOf(text: string): Promise<string | undefined> {
  const { loadYaml } = await import("@kubernetes/client-node");
  try {
    loadYaml(text);
    return undefined;
  } catch (err) {
    return yamlErrorPlace(err);
  }
}
