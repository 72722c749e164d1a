/**
 * The Kubernetes source: one list/watch per resource type for the whole cluster (or one
 * namespace), over Bun's fetch with the kubeconfig's TLS and credentials. Initial state
 * by streaming list where the server serves it, else paginated LIST; resume from the
 * stored resourceVersion; relist on 410 Gone, diffed by the core. A resource named by
 * group/version/resource (or a CRD's) is found through API discovery, and waited for
 * while the server does not serve it.
 */
import * as v from "valibot";
import { defineSource } from "../../sdk/contract.ts";
import {
  credentialPath,
  duration,
  initialWithinMax,
  namespaceName,
  positiveDuration,
  positiveInt,
} from "../../sdk/schema.ts";
import {
  DEFAULT_RESOURCES,
  groupResources,
  oneVersionEach,
  parseResource,
  resourceEntry,
  watchesOf,
} from "./kubernetes/resources.ts";
import { fieldSelectorProblem, labelSelectorProblem, selectorCheck } from "./kubernetes/selectors.ts";
import { type Session, startSession } from "./kubernetes/session.ts";

/**
 * kube/load.ts, loaded once a kubeconfig is: it loads the Kubernetes client (half of a start's CPU), which rbac,
 * new-epoch and the --check of a source naming no kubeconfig need none of.
 */
const kubeLoad = () => import("../../kube/load.ts");

const schema = v.strictObject({
  kubeconfig: v.optional(
    v.pipe(
      credentialPath,
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
      v.array(resourceEntry),
      v.minLength(1, "list at least one resource"),
      v.rawCheck(({ dataset, addIssue }) => {
        // Only once every entry parses: an entry's issue does not untype the list.
        const conflict = dataset.typed && !dataset.issues ? oneVersionEach(dataset.value) : undefined;
        if (conflict) addIssue({ message: conflict });
      }),
      // Named resources by their name, so `v1/pods` and `pods` are one watch with one resume point.
      v.transform((entries) => [...new Set(entries.map((entry) => parseResource(entry).name))]),
      v.description(
        "The resources to watch: the default's, `ingresses`, `horizontalpodautoscalers`, " +
          "`persistentvolumeclaims`, `gateways`, `httproutes`, or any resource as `group/version/resource` " +
          "(`argoproj.io/v1alpha1/rollouts`; the core group as `v1/<resource>`), whose kind and scope API " +
          "discovery tells. One the API server does not serve yet (a CRD not installed) is waited for, " +
          "and keeps the source unready until it is served.",
      ),
    ),
    [...DEFAULT_RESOURCES],
  ),
  namespace: v.optional(
    v.pipe(
      namespaceName,
      v.description(
        "Watch only this namespace (cluster-scoped resources, such as nodes and namespaces, stay cluster-wide: " +
          "a source per namespace lists them in one only, as a second would watch them again and is refused). " +
          "A source per namespace cannot share a namespaced resource either: a kind is one resource's, so a second " +
          "source's `pods` is not watched and keeps that source unready (`/readyz`: `pods (its kind Pod is watched " +
          "as …: watch one of them)`), which `--check` does not say. Without it, every namespace: the kubeconfig " +
          "context's `namespace` is not read.",
      ),
    ),
  ),
  labelSelector: v.optional(
    v.pipe(
      v.string(),
      selectorCheck(labelSelectorProblem),
      v.description(
        "Label selector applied to every resource, as kubectl's `-l`: `key`, `!key`, `key=v`, `key!=v`, " +
          "`key in (a,b)`, `key notin (a,b)`, `key>1`, comma-separated. One the API server would refuse is a " +
          "config error.",
      ),
    ),
  ),
  fieldSelector: v.optional(
    v.pipe(
      v.string(),
      selectorCheck(fieldSelectorProblem),
      v.description(
        "Field selector applied to every resource: `field=v`, `field==v`, `field!=v`, comma-separated (`\\` " +
          "escapes `,`, `=` and `\\` in a value). One the API server would refuse is a config error; a field " +
          "a resource does not support is the API server's 400, shown in `/readyz` naming this key, and retried.",
      ),
    ),
  ),
  pageSize: v.optional(
    v.pipe(
      positiveInt,
      // Past it JavaScript writes no whole number (1e21 is "1e+21", 1e20 past an int64): every LIST would be a 400.
      v.maxValue(
        Number.MAX_SAFE_INTEGER,
        `must be at most ${Number.MAX_SAFE_INTEGER}: the API server reads the page size as a whole number`,
      ),
      v.description("Items per page of a paginated LIST (when the server does not serve streaming lists)."),
    ),
    500,
  ),
  parseThreads: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(0, "parseThreads must be 0 or more"),
      v.maxValue(16, "parseThreads must be at most 16"),
      v.description(
        "Threads that parse and slim watch events, so that the main thread only applies them (the initial sync " +
          "of a large cluster is mostly JSON.parse), at most 16. `0` parses on the main thread.",
      ),
    ),
    1,
  ),
  streamingList: v.optional(
    v.pipe(
      v.picklist(["auto", "always", "never"]),
      v.description(
        "`auto`: streaming lists (Kubernetes 1.32+), falling back to paginated LIST where the server refuses them " +
          "(422) or answers a plain watch (older servers, some proxies); one the server left unanswered, not even " +
          "its headers, until it ended is tried again as a streaming list; `always`; `never`.",
      ),
    ),
    "auto",
  ),
  watchTimeout: v.optional(
    v.pipe(
      duration,
      v.minValue(1000, "watchTimeout must be at least 1s"),
      v.description(
        "Server-side watch timeout (`timeoutSeconds`, ±10 %; at least 1s); a watch that ends is re-opened where it " +
          "was. One the server keeps open a quarter past its timeout (+2 s) from its request, headers or not, is " +
          "ended here and re-opened the same way (a warning, " +
          '`kubemeta_source_watch_restarts_total{reason="overdue"}`): a proxy that drops the parameter, or drips ' +
          "bytes that keep `inactivityTimeout` from firing, cannot hold a resource on one connection for good.",
      ),
    ),
    "5m",
  ),
  inactivityTimeout: v.optional(
    v.pipe(
      positiveDuration,
      v.description(
        "No byte at all for this long on a watch means a half-open connection: reconnect. The maximum: " +
          "after two bookmark intervals a watch waits 3× its longest one (at least 5s) if that is shorter.",
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
  discovery: v.optional(
    v.pipe(
      v.strictObject({
        initial: v.optional(
          v.pipe(
            positiveDuration,
            v.description(
              "Wait after the first look that finds the resource not served. Two looks in a row at least this far " +
                "apart that find it not served mean its CRD is gone: its stored objects are deleted.",
            ),
          ),
          "5s",
        ),
        max: v.optional(v.pipe(duration, v.description("Longest wait; each wait doubles up to it.")), "30s"),
      }),
      initialWithinMax,
      v.description(
        "How often API discovery looks again for a resource the API server does not serve yet " +
          "(each wait between half and all of the current one).",
      ),
    ),
    {},
  ),
  backoff: v.optional(
    v.pipe(
      v.strictObject({
        initial: v.optional(
          v.pipe(
            positiveDuration,
            v.description(
              "Ceiling of the first delay; it doubles with each failure in a row. A watch that delivered an event or " +
                "a bookmark, or a list that completed, ends the row.",
            ),
          ),
          "500ms",
        ),
        max: v.optional(
          v.pipe(duration, v.description("Ceiling of the backoff's delays; a `Retry-After` is waited as said.")),
          "30s",
        ),
      }),
      initialWithinMax,
      v.description(
        "Exponential backoff with full jitter between failed attempts; a `429` or `5xx` that says when to come back " +
          "(`Retry-After`, or its Status's `retryAfterSeconds`: a `503` of an overloaded server, a `500` " +
          "`ServerTimeout`) waits that long instead, up to an hour (`0`: at once, within `requestBudget`). " +
          "A relist after another with no watch delivering in between (`410` again, a continue token expired) waits " +
          "it too, as does a resource answered `404` while discovery still lists it.",
      ),
    ),
    {},
  ),
});

export type KubernetesConfig = v.InferOutput<typeof schema>;

export default defineSource({
  type: "kubernetes",
  description:
    "Watches a Kubernetes cluster's pods, nodes, namespaces, services, endpoint slices and workloads, " +
    "and any resource by group/version/resource.",
  schema,
  example: { context: "kind-kind", resources: ["pods", "nodes", "namespaces", "services"], namespace: "payments" },
  // Discovery (/api, /apis: non-resource URLs) needs no rule: every authenticated client may read it
  // (system:discovery). No request reads one object (`get`): lists and watches only, so only they are granted.
  rbac: (config) =>
    groupResources(config.resources).map(({ group, resource, namespaced }) => ({
      apiGroups: [group],
      resources: [resource],
      verbs: ["list", "watch"],
      // Watched in that namespace alone: a Role there. A custom resource's scope only discovery tells: cluster-wide.
      ...(config.namespace && namespaced ? { namespace: config.namespace } : {}),
    })),
  claims: (config) => watchesOf(config.resources, config).map((key) => `the watch ${key}`),
  async check(config) {
    // Only a kubeconfig the config names: without one it may be the cluster's own, found only inside the cluster.
    // A context is one of a kubeconfig file's (the in-cluster config's only one is named by nobody): the file a
    // start finds (KUBECONFIG, ~/.kube) must have it.
    if (config.kubeconfig || config.context) {
      const { loadKubeConfig } = await kubeLoad();
      loadKubeConfig({ kubeconfig: config.kubeconfig, context: config.context });
    }
  },
  // As check, only a kubeconfig the config names: one found on the machine that runs --check is not the pod's (a start
  // warns of the one it loads).
  async warnings(config) {
    if (!config.kubeconfig && !config.context) return [];
    const { exposedCredentials, loadKubeConfig } = await kubeLoad();
    const { kc, origin } = loadKubeConfig({ kubeconfig: config.kubeconfig, context: config.context });
    return exposedCredentials(kc, origin);
  },
  create(config, ctx) {
    let session: Session | undefined;
    /** Its credentials sent in clear said once, not at each start the host retries. */
    const exposed = { warned: false };
    /** Stops so far: one while start loads the Kubernetes client leaves the source stopped. */
    let stops = 0;
    return {
      async start() {
        if (session) return;
        const stopsBefore = stops;
        const kube = await kubeLoad();
        // Stopped meanwhile (a term ended at once): what started now would watch with nobody to stop it.
        if (stops !== stopsBefore) return;
        session = startSession(config, ctx, kube, exposed);
      },
      async stop() {
        stops++;
        await session?.stop();
        session = undefined;
      },
    };
  },
});
