/**
 * The config's slim rules: paths kept per kind, annotation allow-lists, node routing of
 * custom kinds (what stays out whatever they say: slim-never-published.test.ts).
 * The config's checks and the rules through a real host are in slim-config.test.ts, the
 * built-in slimmers of each kind in slim-kinds.test.ts and slim-kinds-more.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { digest, slim } from "../core/slim.ts";
import type { SlimOptions } from "../core/slim/rules.ts";
import { nodeOf, streamOf } from "../core/route.ts";
import type { KubeObject } from "../sdk/model.ts";
import { fixture, watchEvents } from "./fixtures/k8s/load.ts";
import { NODE, REAL_POD, rollout, vmi } from "./slim-fixtures.ts";

const ROLLOUT_RULES: SlimOptions = {
  annotationAllowList: ["team.example.com/*", "prometheus.io/scrape"],
  kinds: {
    Rollout: {
      keep: ["spec.replicas", "status.phase", "spec.strategy.canary.steps"],
      annotations: ["argo-rollouts.argoproj.io/*"],
    },
  },
};

describe("slim rules: kept paths", () => {
  test("a custom kind keeps its metadata and its rule's paths, subtrees as they are", () => {
    expect(slim("Rollout", rollout(), ROLLOUT_RULES)).toEqual({
      kind: "Rollout",
      apiVersion: "argoproj.io/v1alpha1",
      metadata: {
        name: "checkout",
        namespace: "shop",
        uid: "8d1c2f3a-6b0e-4f43-9c7d-2a1b0e9f4c11",
        creationTimestamp: "2026-05-02T09:12:44Z",
        labels: { app: "checkout" },
        annotations: {
          "argo-rollouts.argoproj.io/dashboard": "https://rollouts.example.com/shop/checkout",
          "prometheus.io/scrape": "true",
          "team.example.com/owner": "checkout",
        },
      },
      spec: {
        replicas: 5,
        strategy: {
          canary: { steps: [{ setWeight: 20 }, { pause: { duration: "10m" } }, { setWeight: 50 }, { pause: {} }] },
        },
      },
      status: { phase: "Paused" },
    });
    // Without a rule, a custom kind is its metadata: the global allow-list only.
    expect(slim("Rollout", rollout(), { annotationAllowList: ["team.example.com/*"] })).toEqual({
      kind: "Rollout",
      apiVersion: "argoproj.io/v1alpha1",
      metadata: expect.objectContaining({ annotations: { "team.example.com/owner": "checkout" } }),
    });
  });

  test("a built-in kind keeps its own fields plus its rule's paths (Pod: priority class, tolerations)", async () => {
    const pod = await fixture(REAL_POD);
    const plain = slim("Pod", pod);
    const ruled = slim("Pod", pod, {
      kinds: { Pod: { keep: ["spec.serviceAccountName", "spec.priorityClassName", "spec.tolerations"] } },
    });
    const { spec, ...rest } = ruled as { spec: Record<string, unknown> };
    const { spec: plainSpec, ...plainRest } = plain as { spec: Record<string, unknown> };
    expect(rest).toEqual(plainRest);
    expect(spec).toEqual({
      ...plainSpec,
      serviceAccountName: "coredns",
      priorityClassName: "system-cluster-critical",
      tolerations: [
        { key: "CriticalAddonsOnly", operator: "Exists" },
        { effect: "NoSchedule", key: "node-role.kubernetes.io/control-plane" },
        { effect: "NoExecute", key: "node.kubernetes.io/not-ready", operator: "Exists", tolerationSeconds: 300 },
        { effect: "NoExecute", key: "node.kubernetes.io/unreachable", operator: "Exists", tolerationSeconds: 300 },
      ],
    });
    // A rule for Pods changes nothing of other kinds.
    const deployment = await fixture("real/kind-v1.36.2/apps.v1.Deployment.json");
    expect(slim("Deployment", deployment, { kinds: { Pod: { keep: ["spec.replicas"] } } })).toEqual(
      slim("Deployment", deployment),
    );
  });

  test("paths that are absent or empty leave nothing behind, not even their parents", () => {
    const raw = rollout();
    (raw.spec as Record<string, unknown>).paused = [];
    const slimObject = slim("Rollout", raw, {
      kinds: { Rollout: { keep: ["spec.analysis.templates", "spec.paused", "status.phase.deeper", "spec.replicas"] } },
    });
    expect(slimObject.spec).toEqual({ replicas: 5 });
    expect(slimObject.status).toBeUndefined();
  });

  test("a key named __proto__ in a kept subtree is kept as a key like any other", () => {
    // A free-form map of a custom resource (Helm values in a HelmRelease, say) may hold any key JSON allows.
    const raw = JSON.parse(
      '{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"r","uid":"u"},' +
        '"spec":{"values":{"__proto__":{"polluted":true},"b":2}}}',
    ) as KubeObject;
    const slimObject = slim("Rollout", raw, { kinds: { Rollout: { keep: ["spec.values"] } } });
    expect(JSON.stringify(slimObject.spec)).toBe('{"values":{"__proto__":{"polluted":true},"b":2}}');
    expect(Object.getPrototypeOf((slimObject.spec as { values: object }).values)).toBe(Object.prototype);
  });

  test("an integer past 2^53 is kept as JavaScript reads it, rounded, as README says; as a string, exactly", () => {
    const text =
      '{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"r","uid":"u"},' +
      '"spec":{"bytes":9007199254740993,"quantity":"9007199254740993"}}';
    const rules = { kinds: { Rollout: { keep: ["spec"] } } };
    const slimObject = slim("Rollout", JSON.parse(text) as KubeObject, rules);
    expect(JSON.stringify(slimObject.spec)).toBe('{"bytes":9007199254740992,"quantity":"9007199254740993"}');
    // A change within the rounding digests alike: no update.
    const changed = JSON.parse(text.replace(":9007199254740993,", ":9007199254740992,")) as KubeObject;
    expect(digest(slim("Rollout", changed, rules))).toBe(digest(slimObject));
  });

  test("digests stay stable: kept maps are key-sorted, and the order of paths does not matter", async () => {
    const [event] = await watchEvents("real/kind-v1.36.2/watch.cr.foobars.ndjson");
    const fooBar = event!.object;
    const spec = fooBar.spec as Record<string, unknown>;
    // The same object from a serializer that writes its keys in another order (a client re-encoding it).
    const reencoded = { ...fooBar, spec: Object.fromEntries(Object.entries(spec).toReversed()) };
    expect(Object.keys(reencoded.spec)).not.toEqual(Object.keys(spec));
    const options = { kinds: { FooBar: { keep: ["spec"] } } };
    expect(slim("FooBar", fooBar, options).spec).toEqual(spec);
    expect(digest(slim("FooBar", reencoded, options))).toBe(digest(slim("FooBar", fooBar, options)));

    const keep = ["spec.template", "status.phase", "spec.replicas"];
    expect(digest(slim("Rollout", rollout(), { kinds: { Rollout: { keep } } }))).toBe(
      digest(slim("Rollout", rollout(), { kinds: { Rollout: { keep: keep.toReversed() } } })),
    );
  });
});

describe("slim rules: paths through lists", () => {
  const keeping = (...keep: string[]) => slim("Rollout", rollout(), { kinds: { Rollout: { keep } } });
  const steps = (...keep: string[]) =>
    (keeping(...keep).spec as { strategy: { canary: { steps: unknown } } }).strategy.canary.steps;

  test("each item keeps the rest of the path at its index; one without it is {}, an empty value it has stays", () => {
    expect(steps("spec.strategy.canary.steps.pause")).toEqual([{}, { pause: { duration: "10m" } }, {}, { pause: {} }]);
    // Two paths through one list fill the same items, in whatever order they are written.
    const both = ["spec.strategy.canary.steps.setWeight", "spec.strategy.canary.steps.pause"];
    expect(steps(...both)).toEqual([
      { setWeight: 20 },
      { pause: { duration: "10m" } },
      { setWeight: 50 },
      { pause: {} },
    ]);
    expect(digest(keeping(...both))).toBe(digest(keeping(...both.toReversed())));
    // Lists in lists, and an env list's entries without their values.
    expect(keeping("spec.template.spec.containers.image", "spec.template.spec.containers.env").spec).toEqual({
      template: {
        spec: {
          containers: [
            { env: [{ name: "DB_PASSWORD" }, { name: "LOG_LEVEL" }], image: "registry.example.com/checkout:2.14.0" },
          ],
        },
      },
    });
    expect(keeping("spec.template.spec.containers.env.name").spec).toEqual({
      template: { spec: { containers: [{ env: [{ name: "DB_PASSWORD" }, { name: "LOG_LEVEL" }] }] } },
    });
    // No item has it: nothing at all, as for an absent field.
    const none = keeping("spec.strategy.canary.steps.analysis", "status.conditions.reason");
    expect([none.spec, none.status]).toEqual([undefined, undefined]);
  });

  test("a built-in list gets the fields in its items when it holds every item of the raw list", async () => {
    const pod = await fixture(REAL_POD);
    const plain = slim("Pod", pod) as { spec: { containers: object[] }; status: object };
    const ruled = slim("Pod", pod, {
      kinds: { Pod: { keep: ["spec.containers.imagePullPolicy", "spec.volumes.name", "status.conditions.reason"] } },
    });
    expect(ruled.spec).toEqual({
      ...plain.spec,
      containers: [{ ...plain.spec.containers[0], imagePullPolicy: "IfNotPresent" }],
      volumes: [{ name: "config-volume" }, { name: "kube-api-access-5lrd8" }],
    });
    // Of five conditions a Pod keeps Ready alone: which raw one each kept item is cannot be told, nothing is added.
    expect(ruled.status).toEqual(plain.status);
  });

  test("a built-in list that keeps none of the raw items gets nothing either, as when it keeps some", () => {
    const transitionTimes = { kinds: { Pod: { keep: ["status.conditions.lastTransitionTime"] } } };
    const scheduled = { type: "PodScheduled", status: "True", lastTransitionTime: "2026-06-15T04:14:53Z" };
    const ready = { type: "Ready", status: "False", lastTransitionTime: "2026-06-15T04:14:58Z" };
    const pending = (...conditions: object[]): KubeObject => ({
      kind: "Pod",
      metadata: { name: "web", namespace: "shop", uid: "uid-web" },
      spec: { nodeName: NODE, containers: [{ name: "web", image: "web:1" }] },
      status: { phase: "Pending", conditions },
    });
    // Scheduled, its kubelet yet to write Ready: no condition without a type (PodScheduled's time) is published.
    expect(slim("Pod", pending(scheduled), transitionTimes).status).toEqual({ phase: "Pending" });
    expect(slim("Pod", pending(scheduled, ready), transitionTimes).status).toEqual({
      phase: "Pending",
      conditions: [{ type: "Ready", status: "False" }],
    });
    // Ready alone is every raw item: it gets the path's field.
    expect(slim("Pod", pending(ready), transitionTimes).status).toEqual({ phase: "Pending", conditions: [ready] });
    // An Ingress's TLS entry without hosts likewise; a custom resource of the kind in its own group is no built-in.
    const ingress = (group: string): KubeObject => ({
      kind: "Ingress",
      apiVersion: `${group}/v1`,
      metadata: { name: "shop", namespace: "shop", uid: "uid-shop" },
      spec: { tls: [{ secretName: "default-cert" }] },
    });
    const secretName = { kinds: { Ingress: { keep: ["spec.tls.secretName"] } } };
    expect(slim("Ingress", ingress("networking.k8s.io"), secretName).spec).toBeUndefined();
    expect(slim("Ingress", ingress("example.com"), secretName).spec).toEqual({
      tls: [{ secretName: "default-cert" }],
    });
  });
});

describe("slim rules: annotations", () => {
  const annotations = (kind: string, options: SlimOptions) =>
    (slim(kind, { ...rollout(), kind }, options).metadata as { annotations?: Record<string, string> }).annotations;

  test("the global allow-list applies to every kind, a kind's own list only to it, by exact key or prefix", () => {
    const options: SlimOptions = {
      annotationAllowList: ["prometheus.io/", "team.example.com/owner"],
      kinds: { Rollout: { annotations: ["rollout.argoproj.io/*"] }, Deployment: {} },
    };
    const everyKind = {
      "prometheus.io/port": "8080",
      "prometheus.io/scrape": "true",
      "team.example.com/owner": "checkout",
    };
    expect(annotations("Rollout", options)).toEqual({ ...everyKind, "rollout.argoproj.io/revision": "7" });
    expect(annotations("Deployment", options)).toEqual(everyKind);
    expect(annotations("Experiment", options)).toEqual(everyKind);
    expect(
      annotations("Rollout", { kinds: { Rollout: { annotations: ["argo-rollouts.argoproj.io/dashboard"] } } }),
    ).toEqual({ "argo-rollouts.argoproj.io/dashboard": "https://rollouts.example.com/shop/checkout" });
  });

  test("never last-applied-configuration, and a Secret none at all, whatever the lists say", () => {
    const all: SlimOptions = {
      annotationAllowList: ["*"],
      kinds: { Rollout: { annotations: ["kubectl.kubernetes.io/*"] } },
    };
    expect(Object.keys(annotations("Rollout", all)!)).not.toContain("kubectl.kubernetes.io/last-applied-configuration");
    expect(
      annotations("Secret", { annotationAllowList: ["*"], kinds: { Secret: { annotations: ["*"] } } }),
    ).toBeUndefined();
  });
});

describe("slim rules: routing", () => {
  const rules: SlimOptions = { kinds: { VirtualMachineInstance: { keep: ["status.phase"], node: "status.nodeName" } } };
  const route = (raw: KubeObject, options = rules) => {
    const slimObject = slim(raw.kind!, raw, options);
    return { stream: streamOf(raw.kind!, slimObject, options), node: nodeOf(raw.kind!, slimObject, options) };
  };

  test("a kind whose rule names a node path goes to that node's stream, and keeps the path", () => {
    expect(route(vmi("db-0", NODE))).toEqual({ stream: `node/${NODE}`, node: NODE });
    expect(slim("VirtualMachineInstance", vmi("db-0", NODE), rules).status).toEqual({
      phase: "Running",
      nodeName: NODE,
    });
  });

  test("without a legal node name there, it is in `all` only, like an unscheduled Pod", () => {
    for (const nodeName of [undefined, "", "Not_A_Node", "node/x", 7, { name: NODE }])
      expect(route(vmi("db-1", nodeName))).toEqual({ stream: null, node: null });
  });

  test("any other custom kind goes to `shared`; Pods and Nodes keep their own routes", async () => {
    expect(route(rollout(), ROLLOUT_RULES)).toEqual({ stream: "shared", node: null });
    expect(route(vmi("db-2", NODE), {})).toEqual({ stream: "shared", node: null });
    // A node rule for a Pod is refused by the config and ignored by the core.
    const pod = await fixture(REAL_POD);
    expect(route(pod, { kinds: { Pod: { node: "spec.schedulerName" } } })).toEqual({
      stream: "node/v1.36-control-plane",
      node: "v1.36-control-plane",
    });
  });
});
