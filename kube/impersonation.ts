/**
 * What a kubeconfig user impersonates beyond another user (`as`, which client-node sends alone as Impersonate-User):
 * its `as-groups`, `as-uid` and `as-user-extra`, sent as kubectl sends them. Without them the API server would take
 * the request for the user alone, whose RBAC rights are not those the kubeconfig's author meant.
 */
import type { KubeConfig } from "@kubernetes/client-node";

export interface Impersonation {
  groups: string[];
  uid?: string;
  /** By key, as `as-user-extra` gives them. */
  extra: Record<string, string[]>;
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((each): each is string => typeof each === "string") : [];

/** A kubeconfig user entry's (its `user:`, as the file has it), or undefined when it impersonates none of them. */
export function impersonationOf(user: Record<string, unknown>): Impersonation | undefined {
  const { "as-groups": groups, "as-uid": uid, "as-user-extra": extra } = user;
  const given: Impersonation = {
    groups: strings(groups),
    ...(typeof uid === "string" && uid ? { uid } : {}),
    extra: Object.fromEntries(
      Object.entries(typeof extra === "object" && extra !== null ? extra : {}).map(([key, values]) => [
        key,
        strings(values),
      ]),
    ),
  };
  return given.groups.length > 0 || given.uid || Object.keys(given.extra).length > 0 ? given : undefined;
}

/** Why one of them cannot be sent (unsendable). */
const ONE_EACH =
  "kubemeta sends one (Bun's fetch sends a header given twice as one line, which kube-apiserver would take for one " +
  "value, `a, b`)";

/**
 * What of `impersonation` cannot be sent as kubectl sends it, if any: a line per group and per extra value, each line
 * one group, one value to kube-apiserver. Bun's fetch joins a header's values in one line: two groups would
 * impersonate one group named `a, b`, neither of the user's.
 */
export function unsendable(impersonation: Impersonation): string | undefined {
  const { groups, extra } = impersonation;
  if (groups.length > 1) return `${groups.length} groups (as-groups): ${ONE_EACH}`;
  const [key, values] = Object.entries(extra).find(([, each]) => each.length > 1) ?? [];
  if (!key || !values) return undefined;
  return `${values.length} values of the as-user-extra key ${JSON.stringify(key)}: ${ONE_EACH}`;
}

/** What each loaded KubeConfig's current user impersonates (set by load.ts, a reload's too). */
const impersonating = new WeakMap<KubeConfig, Impersonation>();

export function impersonate(kc: KubeConfig, impersonation: Impersonation): void {
  impersonating.set(kc, impersonation);
}

/**
 * An `as-user-extra` key in a header's name, as client-go escapes it: a byte that is no token character, or `%`,
 * percent-encoded (the API server decodes it).
 */
function headerKey(key: string): string {
  return [...Buffer.from(key, "utf8")]
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9!#$&'*+\-.^_`|~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

/** Adds `kc`'s Impersonate-Group, -Uid and -Extra-<key> headers to `headers`, if its user impersonates any. */
export function addImpersonation(kc: KubeConfig, headers: Headers): void {
  const given = impersonating.get(kc);
  if (!given) return;
  for (const group of given.groups) headers.append("Impersonate-Group", group);
  if (given.uid) headers.set("Impersonate-Uid", given.uid);
  for (const [key, values] of Object.entries(given.extra)) {
    for (const value of values) headers.append(`Impersonate-Extra-${headerKey(key)}`, value);
  }
}
