/** The `ha` section: replicas on a shared store, one leader elected with a Kubernetes Lease. */
import * as v from "valibot";
import { hostname } from "node:os";
import { credentialPath, namespaceName, positiveDuration } from "../sdk/schema.ts";
import { AHEAD_WAIT_MS } from "../sdk/resume.ts";
import { NAMESPACE_PATTERN, NAMESPACE_RULE } from "../protocol/envelope.ts";
import { isDnsSubdomain } from "../protocol/node-token.ts";
import type { ConfigIssue } from "./config-issues.ts";

/**
 * A Lease's name: a DNS-1123 subdomain, as the API server requires (422 otherwise, and every replica would retry its
 * create for good): labels of lowercase letters, digits and '-' joined by dots, each starting and ending with a
 * letter or digit.
 */
const dnsName = v.pipe(
  v.string(),
  v.check(
    isDnsSubdomain,
    "must be a DNS-1123 subdomain (labels of lowercase letters, digits and '-', each starting and ending with a " +
      "letter or digit, joined by '.'; at most 253), such as kubemeta-leader",
  ),
);

export const haSchema = v.pipe(
  v.strictObject({
    enabled: v.optional(
      v.pipe(
        v.boolean(),
        v.description(
          "Run as one of several replicas on a shared remote store: one leader (holding the Lease) writes and runs " +
            "the sources and delivering sinks; every replica serves readers. Needs a store every replica reaches.",
        ),
      ),
      false,
    ),
    lease: v.optional(
      v.pipe(
        v.strictObject({
          name: v.optional(v.pipe(dnsName, v.description("The Lease's name: a DNS-1123 subdomain.")), "kubemeta"),
          namespace: v.optional(
            v.pipe(
              namespaceName,
              v.description(
                "The Lease's namespace; default `POD_NAMESPACE` (held to the same rule: a namespace's name), else " +
                  "`default` (never the kubeconfig context's `namespace`).",
              ),
            ),
          ),
        }),
        v.description("The coordination.k8s.io/v1 Lease the replicas contend for."),
      ),
      {},
    ),
    identity: v.optional(
      v.pipe(
        v.string(),
        v.minLength(1),
        v.description(
          "This replica's name in the Lease, unique to it; default `POD_NAME`, else `HOSTNAME`, else the host name " +
            "and the process id (two replicas of one name would both take the Lease as theirs).",
        ),
      ),
    ),
    leaseDuration: v.optional(
      v.pipe(
        positiveDuration,
        v.description(
          "How long a Lease holds unrenewed; written to the Lease in whole seconds, rounded up (what the others wait).",
        ),
      ),
      "15s",
    ),
    renewDeadline: v.optional(
      v.pipe(
        positiveDuration,
        v.description(
          "How long the leader keeps trying to renew before it steps down, and a standby waits for an answer to " +
            "each request of its own for the Lease; less than leaseDuration.",
        ),
      ),
      "10s",
    ),
    retryPeriod: v.optional(
      v.pipe(
        positiveDuration,
        v.description(
          "How often the Lease is renewed, and tried by the others (with up to 1.2× jitter); less than " +
            "renewDeadline / 1.2.",
        ),
      ),
      "2s",
    ),
    followInterval: v.optional(
      v.pipe(
        positiveDuration,
        // A reader's resume point ahead of this replica's log is waited for AHEAD_WAIT_MS: several polls must fit.
        v.maxValue(
          AHEAD_WAIT_MS / 2,
          `must be at most ${AHEAD_WAIT_MS / 2000}s: a resume point from a replica further on is waited for ` +
            `${AHEAD_WAIT_MS / 1000}s`,
        ),
        v.description(
          "How often a replica that does not lead reads new updates from the store; at most 1s, so that a client " +
            "moving from a replica further on finds its position here within the 2 s it is waited for.",
        ),
      ),
      "250ms",
    ),
    kubeconfig: v.optional(
      v.pipe(
        credentialPath,
        v.description("kubeconfig for the Lease; default as the kubernetes source: in-cluster, `KUBECONFIG`, ~/.kube."),
      ),
    ),
    context: v.optional(
      v.pipe(v.string(), v.minLength(1), v.description("A kubeconfig context other than its current one.")),
    ),
  }),
  // Both values said: the one at fault may be the other, left at its default (`leaseDuration: 15`, 15 ms, not 15 s).
  v.forward(
    v.check(
      (ha) => ha.renewDeadline < ha.leaseDuration,
      ({ input }) => {
        const { renewDeadline, leaseDuration } = input as { renewDeadline: number; leaseDuration: number };
        return `must be less than leaseDuration (${shown(renewDeadline)}; leaseDuration is ${shown(leaseDuration)})`;
      },
    ),
    ["renewDeadline"],
  ),
  // client-go's rule: a retry, jittered by up to 1.2 × retryPeriod, must still come before the renew deadline.
  v.forward(
    v.check(
      (ha) => ha.retryPeriod * 1.2 < ha.renewDeadline,
      ({ input }) => {
        const { retryPeriod, renewDeadline } = input as { retryPeriod: number; renewDeadline: number };
        const deadline = `renewDeadline is ${shown(renewDeadline)}`;
        return `must be less than renewDeadline / 1.2 (${shown(retryPeriod)}; ${deadline})`;
      },
    ),
    ["retryPeriod"],
  ),
);

/** A duration as a config writes it: whole seconds as `10s`, anything else in milliseconds, a bare number's unit. */
function shown(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export interface HaConfig {
  /** `namespaceFrom`: what named the namespace; `default` when neither the config nor the environment did. */
  lease: { name: string; namespace: string; namespaceFrom: "config" | "POD_NAMESPACE" | "default" };
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  followIntervalMs: number;
  kubeconfig?: string;
  context?: string;
}

/** The section as the host uses it, its defaults taken from the pod's environment; undefined when disabled. */
export function haConfig(
  ha: v.InferOutput<typeof haSchema>,
  env: Record<string, string | undefined>,
): HaConfig | undefined {
  if (!ha.enabled) return undefined;
  const namespaceFrom = ha.lease.namespace ? "config" : env.POD_NAMESPACE ? "POD_NAMESPACE" : "default";
  return {
    lease: { name: ha.lease.name, namespace: ha.lease.namespace ?? (env.POD_NAMESPACE || "default"), namespaceFrom },
    identity: ha.identity ?? (env.POD_NAME || env.HOSTNAME || `${hostname()}-${process.pid}`),
    leaseDurationMs: ha.leaseDuration,
    renewDeadlineMs: ha.renewDeadline,
    retryPeriodMs: ha.retryPeriod,
    followIntervalMs: ha.followInterval,
    kubeconfig: ha.kubeconfig,
    context: ha.context,
  };
}

/**
 * What the environment gave that the schema could not check: a POD_NAMESPACE set by hand (the downward API's is
 * always a namespace's name) that no namespace can have would have the Lease asked for where none can be.
 */
export function haProblems(ha: HaConfig | undefined): ConfigIssue[] {
  if (ha?.lease.namespaceFrom !== "POD_NAMESPACE" || NAMESPACE_PATTERN.test(ha.lease.namespace)) return [];
  const given = JSON.stringify(ha.lease.namespace);
  return [{ path: "ha.lease.namespace", message: `POD_NAMESPACE ${given}, its default, ${NAMESPACE_RULE}` }];
}
