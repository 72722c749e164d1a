/** What the config tests read of a refused config. */
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";

/** The issues of `raw` as `path: message`, with the built-in plugins and `env`; none for a config accepted. */
export async function issuesOf(raw: unknown, env: Record<string, string> = {}): Promise<string[]> {
  try {
    await resolveConfig(raw, { baseDir: "/", env, registry: builtins });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  return [];
}
