/**
 * `bun run main.ts rbac [--config kubemeta.yaml]`: the ClusterRole a config needs, and no more. Each plugin that
 * talks to the API server declares what it reads (`rbac` in its declaration); rules of one API group are merged.
 */
import type { Config } from "../host/config.ts";
import type { PolicyRule } from "../sdk/contract.ts";

/** The rules of every plugin of the config, one per API group and verb set, in the order they first appear. */
export function policyRules(config: Config): PolicyRule[] {
  const plugins = [config.store, ...config.sources, ...config.sinks];
  const merged = new Map<string, PolicyRule>();
  for (const { declaration, config: pluginConfig } of plugins) {
    for (const rule of declaration.rbac?.(pluginConfig) ?? []) {
      for (const group of rule.apiGroups) {
        const key = `${group}\n${rule.verbs.join(",")}`;
        const into = merged.get(key) ?? { apiGroups: [group], resources: [], verbs: rule.verbs };
        merged.set(key, into);
        for (const resource of rule.resources) if (!into.resources.includes(resource)) into.resources.push(resource);
      }
    }
  }
  return [...merged.values()];
}

/** A YAML list in flow style, quoting only what YAML would misread (the core group's ""). */
const flow = (items: string[]) =>
  `[${items.map((item) => (/^[a-z0-9][a-z0-9.*/-]*$/.test(item) ? item : JSON.stringify(item))).join(", ")}]`;

/** The ClusterRole as YAML, in the form deploy/kubemeta.yaml writes it. */
export function clusterRoleYaml(config: Config, name = "kubemeta"): string {
  const rules = policyRules(config).map(
    (rule) =>
      `  - apiGroups: ${flow(rule.apiGroups)}\n` +
      `    resources: ${flow(rule.resources)}\n` +
      `    verbs: ${flow(rule.verbs)}\n`,
  );
  return [
    "apiVersion: rbac.authorization.k8s.io/v1\n",
    "kind: ClusterRole\n",
    `metadata:\n  name: ${name}\n`,
    rules.length > 0 ? `rules:\n${rules.join("")}` : "rules: []\n",
  ].join("");
}
