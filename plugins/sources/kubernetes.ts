/**
 * The Kubernetes source: one list/watch per resource type for the whole cluster (or one
 * namespace), over Bun's fetch with the kubeconfig's TLS and credentials. Initial state
 * by streaming list where the server serves it, else paginated LIST; resume from the
 * stored resourceVersion; relist on 410 Gone, diffed by the core.
 */
import * as v from "valibot";
import { defineSource } from "../../sdk/contract.ts";
import { duration, positiveInt } from "../../sdk/schema.ts";
import { createRequestBudget } from "./kubernetes/budget.ts";
import { Reflector } from "./kubernetes/reflector.ts";
import { createRequester } from "./kubernetes/request.ts";
import { RESOURCE_NAMES, resourceType, resumeKey } from "./kubernetes/resources.ts";
import { sourceMetrics } from "./kubernetes/telemetry.ts";
import { createTransport, loadKubeConfig } from "./kubernetes/transport.ts";

const resourceName = v.picklist(
  RESOURCE_NAMES,
  (issue) => `unknown resource ${issue.received}; valid resources: ${RESOURCE_NAMES.join(", ")}`,
);

const schema = v.strictObject({
  kubeconfig: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.description(
        "A kubeconfig file; without it, the in-cluster service account, else `KUBECONFIG`, else `~/.kube/config`.",
      ),
    ),
  ),
  context: v.optional(
    v.pipe(v.string(), v.minLength(1), v.description("A context of the kubeconfig other than its current one.")),
  ),
  resources: v.optional(
    v.pipe(
      v.array(resourceName),
      v.minLength(1, "list at least one resource"),
      v.transform((names) => [...new Set(names)]),
      v.description("The resources to watch: any of the default's."),
    ),
    [...RESOURCE_NAMES],
  ),
  namespace: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.description(
        "Watch only this namespace (the cluster-scoped resources, nodes and namespaces, stay cluster-wide).",
      ),
    ),
  ),
  labelSelector: v.optional(v.pipe(v.string(), v.description("Label selector applied to every resource."))),
  fieldSelector: v.optional(v.pipe(v.string(), v.description("Field selector applied to every resource."))),
  pageSize: v.optional(
    v.pipe(
      positiveInt,
      v.description("Items per page of a paginated LIST (when the server does not serve streaming lists)."),
    ),
    500,
  ),
  streamingList: v.optional(
    v.pipe(
      v.picklist(["auto", "always", "never"]),
      v.description(
        "`auto`: streaming lists (Kubernetes 1.32+), falling back to paginated LIST where the server refuses them " +
          "(422); `always`; `never`.",
      ),
    ),
    "auto",
  ),
  watchTimeout: v.optional(
    v.pipe(
      duration,
      v.minValue(1000, "watchTimeout must be at least 1s"),
      v.description(
        "Server-side watch timeout (`timeoutSeconds`, ±10 %); a watch that ends is re-opened where it was.",
      ),
    ),
    "5m",
  ),
  inactivityTimeout: v.optional(
    v.pipe(
      duration,
      v.minValue(1, "inactivityTimeout must be positive"),
      v.description(
        "No byte at all for this long on a watch (bookmarks arrive about every minute) " +
          "means a half-open connection: reconnect.",
      ),
    ),
    "90s",
  ),
  requestBudget: v.optional(
    v.pipe(
      v.strictObject({
        qps: v.optional(v.pipe(v.number(), v.gtValue(0), v.description("Requests per second, sustained.")), 5),
        burst: v.optional(v.pipe(positiveInt, v.description("Requests allowed at once after a quiet spell.")), 20),
      }),
      v.description("Token bucket shared by all of the source's requests (continuation pages of one LIST are free)."),
    ),
    {},
  ),
  backoff: v.optional(
    v.pipe(
      v.strictObject({
        initial: v.optional(
          v.pipe(duration, v.description("Ceiling of the first delay; it doubles with each failure in a row.")),
          "500ms",
        ),
        max: v.optional(v.pipe(duration, v.description("Ceiling of any delay.")), "30s"),
      }),
      v.description(
        "Exponential backoff with full jitter between failed attempts; `429` and `503` wait `Retry-After` instead.",
      ),
    ),
    {},
  ),
});

export default defineSource({
  type: "kubernetes",
  description: "Watches a Kubernetes cluster's pods, nodes, namespaces, services, endpoint slices and workloads.",
  schema,
  example: { context: "kind-kind", resources: ["pods", "nodes", "namespaces", "services"], namespace: "payments" },
  create(config, ctx) {
    let controller: AbortController | undefined;
    let loops: Promise<void>[] = [];
    return {
      async start() {
        if (controller) return;
        const options = { kubeconfig: config.kubeconfig, context: config.context };
        const { kc, origin } = loadKubeConfig(options);
        const transport = createTransport(kc, () => loadKubeConfig(options).kc);
        const metrics = sourceMetrics(ctx.metrics);
        const requester = createRequester({
          transport,
          budget: createRequestBudget(config.requestBudget.qps, config.requestBudget.burst),
          metrics,
          logger: ctx.logger,
          inactivityTimeoutMs: config.inactivityTimeout,
        });
        const scope = {
          namespace: config.namespace,
          labelSelector: config.labelSelector,
          fieldSelector: config.fieldSelector,
        };
        let unsynced = config.resources.length;
        const onSynced = () => {
          if (--unsynced === 0) {
            ctx.logger.info("kubernetes source synced", { resources: config.resources.length });
            ctx.synced();
          }
        };
        controller = new AbortController();
        const signal = controller.signal;
        ctx.logger.info("kubernetes source starting", {
          server: transport.server,
          kubeconfig: origin,
          resources: config.resources,
        });
        loops = config.resources.map((name) => {
          const type = resourceType(name);
          const reflector = new Reflector(
            {
              type,
              scope,
              key: resumeKey(type, scope),
              pageSize: config.pageSize,
              streamingList: config.streamingList,
              watchTimeoutMs: config.watchTimeout,
              backoff: { initialMs: config.backoff.initial, maxMs: config.backoff.max },
            },
            { changes: ctx.changes, requester, metrics, logger: ctx.logger, onSynced },
          );
          return reflector.run(signal);
        });
      },
      async stop() {
        controller?.abort();
        await Promise.all(loops);
        controller = undefined;
        loops = [];
      },
    };
  },
});
