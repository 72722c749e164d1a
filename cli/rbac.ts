/**
 * `bun run main.ts rbac [--config kubemeta.yaml]`: the ClusterRole a config needs, and no more. Each plugin that
 * talks to the API server declares what it reads (`rbac` in its declaration); rules of one API group are merged.
 * What a plugin reads in one namespace only (a source with `namespace`) is a Role there instead. With `ha` enabled, a
 * Role in the Lease's namespace follows: the election needs its one Lease, nothing cluster-wide.
 */
import type { Config } from "../host/config.ts";
import type { HaConfig } from "../host/ha-config.ts";
import type { PolicyRule } from "../sdk/contract.ts";

/** A PolicyRule that may be narrowed to named objects. */
export interface NamedPolicyRule extends PolicyRule {
  resourceNames?: string[];
}

/** Every rule of every plugin of the config. */
function pluginRules(config: Config): PolicyRule[] {
  const plugins = [config.store, ...config.sources, ...config.sinks];
  return plugins.flatMap(({ declaration, config: pluginConfig }) => declaration.rbac?.(pluginConfig) ?? []);
}

/**
 * The rules of every plugin of the config needed cluster-wide, or in `namespace` alone when given: one per API group
 * and verb set, in the order they first appear.
 */
export function policyRules(config: Config, namespace?: string): PolicyRule[] {
  const merged = new Map<string, PolicyRule>();
  for (const rule of pluginRules(config).filter((r) => r.namespace === namespace)) {
    for (const group of rule.apiGroups) {
      const key = `${group}\n${rule.verbs.join(",")}`;
      const into = merged.get(key) ?? { apiGroups: [group], resources: [], verbs: rule.verbs };
      merged.set(key, into);
      for (const resource of rule.resources) if (!into.resources.includes(resource)) into.resources.push(resource);
    }
  }
  return [...merged.values()];
}

/** A YAML list in flow style, quoting only what YAML would misread (the core group's ""). */
const flow = (items: string[]) =>
  `[${items.map((item) => (/^[a-z0-9][a-z0-9.*/-]*$/.test(item) ? item : JSON.stringify(item))).join(", ")}]`;

/**
 * What the Lease election does (get, create on first start, update to renew, take over and release) on its one Lease.
 * `create` cannot be narrowed by name (the API server authorizes it before the object has one), the rest can.
 */
function leaseRules(ha: HaConfig): NamedPolicyRule[] {
  const group = "coordination.k8s.io";
  return [
    { apiGroups: [group], resources: ["leases"], verbs: ["create"] },
    { apiGroups: [group], resources: ["leases"], resourceNames: [ha.lease.name], verbs: ["get", "update"] },
  ];
}

function rulesYaml(rules: NamedPolicyRule[]): string {
  if (rules.length === 0) return "rules: []\n";
  const items = rules.map(
    (rule) =>
      `  - apiGroups: ${flow(rule.apiGroups)}\n` +
      `    resources: ${flow(rule.resources)}\n` +
      (rule.resourceNames ? `    resourceNames: ${flow(rule.resourceNames)}\n` : "") +
      `    verbs: ${flow(rule.verbs)}\n`,
  );
  return `rules:\n${items.join("")}`;
}

/** The ClusterRole as YAML, in the form deploy/kubemeta.yaml writes it. */
function clusterRoleYaml(config: Config, name: string): string {
  return [
    "apiVersion: rbac.authorization.k8s.io/v1\n",
    "kind: ClusterRole\n",
    `metadata:\n  name: ${name}\n`,
    rulesYaml(policyRules(config)),
  ].join("");
}

/** The Role of what the config reads in `namespace` alone, as YAML. */
function namespaceRoleYaml(config: Config, name: string, namespace: string): string {
  return [
    "apiVersion: rbac.authorization.k8s.io/v1\n",
    "kind: Role\n",
    `metadata:\n  name: ${name}\n  namespace: ${namespace}\n`,
    rulesYaml(policyRules(config, namespace)),
  ].join("");
}

/**
 * The Role of the `ha` Lease as YAML, in the form deploy/kubemeta-ha.yaml writes it. Named after the Lease
 * (`kubemeta-lease` for `kubemeta`): deployments of other Leases in one namespace each have their own, so that
 * removing one takes nothing from another.
 */
export function leaseRoleYaml(ha: HaConfig): string {
  return [
    "apiVersion: rbac.authorization.k8s.io/v1\n",
    "kind: Role\n",
    `metadata:\n  name: ${ha.lease.name}-lease\n  namespace: ${ha.lease.namespace}\n`,
    rulesYaml(leaseRules(ha)),
  ].join("");
}

/**
 * What `main.ts rbac` says on stderr beside the roles: with `ha`, a Lease's Role put in `default` because nothing named
 * its namespace. Outside the pod POD_NAMESPACE is seldom set, and a Role in the wrong namespace grants nothing there.
 */
export function rbacWarnings(config: Config): string[] {
  if (config.ha?.lease.namespaceFrom !== "default") return [];
  return [
    'the Lease\'s Role is in namespace "default": neither ha.lease.namespace nor POD_NAMESPACE names one ' +
      "(set POD_NAMESPACE to the namespace the replicas run in, as their pods have it)",
  ];
}

/**
 * Everything `main.ts rbac` prints: the ClusterRole, then (with `ha`) the Lease's Role, as one YAML stream. Named as
 * deploy/ names them: applied, the output replaces the role of the manifest the config came from, not the other's.
 */
export function rbacYaml(config: Config): string {
  const name = config.ha ? "kubemeta-ha" : "kubemeta";
  const namespaces = new Set(pluginRules(config).flatMap((rule) => (rule.namespace ? [rule.namespace] : [])));
  const documents = [
    clusterRoleYaml(config, name),
    ...[...namespaces].map((ns) => namespaceRoleYaml(config, name, ns)),
  ];
  if (config.ha) documents.push(leaseRoleYaml(config.ha));
  return documents.join("---\n");
}
