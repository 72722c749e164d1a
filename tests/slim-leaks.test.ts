/** slim never lets through what churns (it defeats no-op suppression) or leaks (secrets, env), whatever the input. */
import { describe, expect, test } from "bun:test";
import { slim } from "../core/slim.ts";
import type { KubeObject } from "../sdk/model.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { CANONICAL_FILES, fixture, listItems, realPods, watchEvents } from "./fixtures/k8s/load.ts";
import { REAL_NODE } from "./slim-fixtures.ts";

const EVERY_ANNOTATION = { annotationAllowList: ["*"] };

/** Substrings that must never reach a consumer: churn (it defeats no-op suppression) and secrets. */
const NEVER_PUBLISHED = [
  "managedFields",
  "fieldsV1",
  "last-applied-configuration",
  '"resourceVersion"',
  '"generation"',
  "selfLink",
  "finalizers",
  "lastHeartbeatTime",
  "lastProbeTime",
  "lastTransitionTime",
  "observedGeneration",
  '"env"',
  "envFrom",
  "secretKeyRef",
];

function expectNothingForbidden(slimObject: SlimObject): void {
  const json = JSON.stringify(slimObject);
  for (const forbidden of NEVER_PUBLISHED) expect(json).not.toContain(forbidden);
}

async function realObjects(): Promise<KubeObject[]> {
  return [
    ...(await realPods()),
    ...(await watchEvents("real/kind-v1.36.2/watch.core.v1.pods.ndjson")).map((event) => event.object),
    await fixture("real/kind-v1.36.2/apps.v1.Deployment.json"),
    ...(await listItems("real/kind-v1.36.2/apps.v1.DeploymentList.json")).map((item) => ({
      ...item,
      kind: "Deployment",
    })),
    await fixture("real/kind-v1.36.2/batch.v1.Job.json"),
    ...(await watchEvents("real/kind-v1.36.2/watch.cr.foobars.ndjson")).map((event) => event.object),
    await fixture(REAL_NODE),
    await fixture("real/kubectl-edit-2017/core.v1.Service.json"),
    await fixture("real/kubectl-edit-2017/core.v1.ConfigMap.json"),
  ];
}

describe("slim", () => {
  test("every canonical kind slims to its identity and nothing that churns or leaks", async () => {
    for (const file of CANONICAL_FILES) {
      const raw = await fixture(file);
      const slimObject = slim(raw.kind!, raw, EVERY_ANNOTATION);
      expect(slimObject.kind).toBe(raw.kind!);
      expect(slimObject.apiVersion).toBe(raw.apiVersion!);
      expect(slimObject.metadata).toMatchObject({ name: "nameValue", namespace: "namespaceValue", uid: "uidValue" });
      expectNothingForbidden(slimObject);
      // "valueValue" is the placeholder of env values (and of header and taint values).
      expect(JSON.stringify(slimObject)).not.toContain("valueValue");
    }
  });

  test("every real object slims without losing its identity", async () => {
    for (const raw of await realObjects()) {
      const kind = raw.kind ?? "Pod";
      const slimObject = slim(kind, raw, EVERY_ANNOTATION);
      expect(slimObject.metadata).toMatchObject({ name: raw.metadata!.name!, uid: raw.metadata!.uid! });
      expectNothingForbidden(slimObject);
    }
  });

  test("env values never appear, whatever the container", async () => {
    const kindnet = (await listItems("real/kind-v1.36.2/core.v1.PodList.json")).find((pod) =>
      pod.metadata?.name?.startsWith("kindnet"),
    )!;
    expect(JSON.stringify(kindnet)).toContain("v1.36-control-plane:6443");
    const json = JSON.stringify(slim("Pod", kindnet, EVERY_ANNOTATION));
    for (const leaked of ["CONTROL_PLANE_ENDPOINT", "v1.36-control-plane:6443", "POD_SUBNET", "10.244.0.0/16"]) {
      expect(json).not.toContain(leaked);
    }
  });

  test("a Secret is metadata only: no data, no annotations even when all are allowed", () => {
    const secret: KubeObject = {
      kind: "Secret",
      apiVersion: "v1",
      metadata: {
        name: "db",
        namespace: "payments",
        uid: "u-1",
        resourceVersion: "7",
        labels: { app: "db" },
        annotations: {
          "openshift.io/token-secret.value": "token-in-annotation",
          "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}',
        },
      },
      type: "Opaque",
      data: { password: "aHVudGVyMg==" },
      stringData: { password: "hunter2" },
    };
    const slimObject = slim("Secret", secret, EVERY_ANNOTATION);
    expect(slimObject).toEqual({
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name: "db", namespace: "payments", uid: "u-1", labels: { app: "db" } },
    });
    for (const leaked of ["aHVudGVyMg==", "hunter2", "token-in-annotation"])
      expect(JSON.stringify(slimObject)).not.toContain(leaked);
  });

  test("annotations: only allow-listed ones, by exact key or prefix, never last-applied-configuration", async () => {
    const deployment = await fixture("real/kind-v1.36.2/apps.v1.Deployment.json");
    deployment.metadata!.annotations = {
      "kubectl.kubernetes.io/last-applied-configuration": '{"spec":{"env":[{"name":"TOKEN","value":"t0k3n"}]}}',
      "kubectl.kubernetes.io/restartedAt": "2026-06-15T04:15:57Z",
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9153",
      "deployment.kubernetes.io/revision": "3",
      team: "payments",
    };
    const annotationsWith = (annotationAllowList?: string[]) =>
      Object.keys(
        (slim("Deployment", deployment, { annotationAllowList }).metadata as { annotations?: object }).annotations ??
          {},
      );
    expect(annotationsWith(undefined)).toEqual([]);
    expect(annotationsWith([])).toEqual([]);
    expect(annotationsWith(["*"])).toEqual([
      "deployment.kubernetes.io/revision",
      "kubectl.kubernetes.io/restartedAt",
      "prometheus.io/port",
      "prometheus.io/scrape",
      "team",
    ]);
    expect(annotationsWith(["kubectl.kubernetes.io/"])).toEqual(["kubectl.kubernetes.io/restartedAt"]);
    expect(annotationsWith(["kubectl.kubernetes.io/last-applied-configuration", "kubectl.*"])).toEqual([
      "kubectl.kubernetes.io/restartedAt",
    ]);
    expect(annotationsWith(["prometheus.io/", "team"])).toEqual(["prometheus.io/port", "prometheus.io/scrape", "team"]);
    expect(annotationsWith(["deployment.kubernetes.io/rev*", "tea", "prometheus.io"])).toEqual([
      "deployment.kubernetes.io/revision",
    ]);
  });

  test("odd input and tombstones never throw; what is there is kept", () => {
    const kinds = [
      "Pod",
      "Node",
      "Service",
      "EndpointSlice",
      "Namespace",
      "ReplicaSet",
      "Deployment",
      "StatefulSet",
      "DaemonSet",
      "Job",
      "CronJob",
      "Secret",
      "Widget",
      "__defineGetter__",
      "toString",
    ];
    const odd: unknown[] = [
      null,
      undefined,
      "Pod",
      42,
      [],
      { metadata: "x", spec: [], status: 5 },
      {
        metadata: { labels: ["a"], ownerReferences: {}, annotations: null },
        spec: { containers: "c", selector: [] },
        status: { conditions: {} },
      },
      {
        spec: {
          containers: [null, "x", { name: 5, ports: [1, { containerPort: "53" }] }],
          template: 3,
          jobTemplate: [],
        },
        endpoints: [null],
      },
      {
        status: {
          containerStatuses: [{ name: "c", state: { running: null, waiting: "w" } }],
          podIPs: [{ ip: {} }],
          addresses: [[]],
        },
      },
    ];
    for (const kind of kinds) {
      for (const raw of odd) {
        const slimObject = slim(kind, raw as KubeObject, EVERY_ANNOTATION);
        expect(slimObject.kind).toBe(kind);
        expect(JSON.stringify(slimObject)).not.toContain("null");
      }
      const tombstone = { metadata: { name: "gone", namespace: "ns", uid: "u-9", resourceVersion: "12" } };
      expect(slim(kind, tombstone).metadata).toEqual({ name: "gone", namespace: "ns", uid: "u-9" });
    }
    const mixed = slim("Pod", {
      metadata: { name: "p", labels: { good: "yes", bad: 1 } },
      spec: { containers: [null, { name: "c", ports: [1, { containerPort: 53 }] }] },
    });
    expect(mixed).toEqual({
      kind: "Pod",
      apiVersion: "v1",
      metadata: { name: "p", labels: { good: "yes" } },
      spec: { containers: [{ name: "c", ports: [{ containerPort: 53 }] }] },
    });
  });
});
