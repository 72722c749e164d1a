/**
 * The `ha` Lease as the config sets it up: its elector, on the kubeconfig `ha` names (the replication loop,
 * replication.ts, contends with it), and what the start and --check say of that kubeconfig: its credentials sent in
 * clear text, why it did not load.
 */
import type { HaConfig } from "./ha-config.ts";
import type { Logger, Metrics } from "../sdk/telemetry.ts";
import { exposedCredentials, ContextNotFound, loadForProcess, loadKubeConfig, unsaid } from "../kube/load.ts";
import { createTransport } from "../kube/transport.ts";
import type { ConfigIssue } from "./config-issues.ts";
import { createElector, type Elector } from "../kube/election.ts";

/** The Lease's elector; throws when the kubeconfig cannot be loaded, before anything has started. */
export function electorFor(ha: HaConfig, logger: Logger, metrics: Metrics): Elector {
  const { kc, reload } = loadForProcess({ kubeconfig: ha.kubeconfig, context: ha.context });
  const transport = createTransport(kc, reload);
  return createElector({
    transport,
    namespace: ha.lease.namespace,
    name: ha.lease.name,
    identity: ha.identity,
    leaseDurationMs: ha.leaseDurationMs,
    renewDeadlineMs: ha.renewDeadlineMs,
    retryPeriodMs: ha.retryPeriodMs,
    logger: logger.child({ lease: `${ha.lease.namespace}/${ha.lease.name}`, identity: ha.identity }),
    requests: metrics.counter(
      "kubemeta_ha_lease_requests_total",
      "Requests for the ha Lease to the Kubernetes API server, by verb (get, create, update) and code: the HTTP " +
        "status, error (no answer) or credentials (none could be obtained).",
    ),
  });
}

/**
 * The Lease's credentials sent in clear text (exposedCredentials) and what its load warns of (a pod's `ca.crt` that
 * cannot be used), at its key, none of a kubeconfig that fails. For --check, of a kubeconfig a key names only (else
 * the pod's service account, not this machine's KUBECONFIG); for a start (`started`), of the one it loads, which it
 * sends them with: this machine's KUBECONFIG out of a pod, its load's warnings then the process's first (`unsaid`).
 */
export function leaseWarnings(ha: HaConfig, started = false): string[] {
  if (!started && !ha.kubeconfig && !ha.context) return [];
  try {
    const { kc, origin, warnings } = loadKubeConfig({ kubeconfig: ha.kubeconfig, context: ha.context });
    const key = ha.kubeconfig ? "ha.kubeconfig" : "ha";
    return [...(started ? unsaid(origin, warnings) : warnings), ...exposedCredentials(kc, origin)].map(
      (warning) => `${key}: ${warning}`,
    );
  } catch {
    return [];
  }
}

/**
 * Why the Lease's kubeconfig did not load, at the key to change: `ha.context` for a context it lacks, in the words the
 * kubernetes source says its own in; `ha.kubeconfig` for a file named there; `ha` when no key named it.
 */
export function leaseKubeconfigIssue(ha: HaConfig, error: unknown): ConfigIssue {
  if (error instanceof ContextNotFound) return { path: "ha.context", message: error.message };
  const cause = error instanceof Error ? error.message : String(error);
  return {
    path: ha.kubeconfig ? "ha.kubeconfig" : "ha",
    message: `the kubeconfig of the Lease cannot be loaded: ${cause}`,
  };
}
