/**
 * One run of the Kubernetes source, from a start to its stop: the kubeconfig's transport, the request budget shared by
 * every request, the parse threads, and one follow loop per resource (follow.ts).
 */
import type { SourceContext } from "../../../sdk/contract.ts";
import type * as KubeLoad from "../../../kube/load.ts";
import { createTransport } from "../../../kube/transport.ts";
import type { KubernetesConfig } from "../kubernetes.ts";
import { createRequestBudget } from "./budget.ts";
import { follow, type FollowConfig } from "./follow.ts";
import { ParseThreads } from "./parse-threads.ts";
import { SourceReadiness } from "./readiness.ts";
import { createRequester } from "./request.ts";
import { parseResource } from "./resources.ts";
import { sourceMetrics } from "./telemetry.ts";

export interface Session {
  /** Ends every loop, then closes what they used. */
  stop(): Promise<void>;
}

/**
 * Loads the kubeconfig (a failure is said in /readyz and thrown: the host retries the start) and starts following.
 * `exposed.warned`: whether the credentials in clear of a kubeconfig found on the machine were warned of, once.
 */
export function startSession(
  config: KubernetesConfig,
  ctx: SourceContext,
  kube: typeof KubeLoad,
  exposed: { warned: boolean },
): Session {
  const options = { kubeconfig: config.kubeconfig, context: config.context };
  let loaded: ReturnType<typeof kube.loadForProcess>;
  try {
    loaded = kube.loadForProcess(options);
  } catch (error) {
    // The host retries the start; meanwhile /readyz says why.
    ctx.waiting(`cannot load the kubeconfig: ${(error as Error).message}`);
    throw error;
  }
  const { kc, origin, warnings, reload } = loaded;
  // What `warnings` leaves to the start: a kubeconfig no key names is the pod's, or this machine's out of one.
  if (!config.kubeconfig && !config.context) {
    for (const warning of kube.unsaid(origin, warnings)) ctx.logger.warn(warning);
    if (!exposed.warned) for (const warning of kube.exposedCredentials(kc, origin)) ctx.logger.warn(warning);
  }
  exposed.warned = true;
  const transport = createTransport(kc, reload);
  const metrics = sourceMetrics(ctx.metrics);
  const requester = createRequester({
    transport,
    budget: createRequestBudget(config.requestBudget.qps, config.requestBudget.burst),
    metrics,
    logger: ctx.logger,
    inactivityTimeoutMs: config.inactivityTimeout,
  });
  const readiness = new SourceReadiness(config.resources, ctx);
  const followConfig: FollowConfig = {
    scope: {
      namespace: config.namespace,
      labelSelector: config.labelSelector,
      fieldSelector: config.fieldSelector,
    },
    pageSize: config.pageSize,
    streamingList: config.streamingList,
    watchTimeoutMs: config.watchTimeout,
    backoff: { initialMs: config.backoff.initial, maxMs: config.backoff.max },
    discovery: { initialMs: config.discovery.initial, maxMs: config.discovery.max },
  };
  const parseThreads =
    config.parseThreads > 0 && ctx.changes.prepared
      ? new ParseThreads(config.parseThreads, ctx.changes.prepared.preparer)
      : undefined;
  const controller = new AbortController();
  ctx.logger.info("kubernetes source starting", {
    server: transport.server,
    kubeconfig: origin,
    resources: config.resources,
  });
  readiness.report();
  const deps = { changes: ctx.changes, requester, metrics, logger: ctx.logger, readiness, parseThreads };
  const loops = config.resources.map((name) => follow(parseResource(name), followConfig, deps, controller.signal));
  return {
    async stop() {
      controller.abort();
      await Promise.all(loops);
      // An exec plugin that has not exited: the next start runs its own, and this one would be left running.
      transport.close();
      parseThreads?.close();
    },
  };
}
