import { describe, expect, test } from "bun:test";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject, SlimObject } from "../core/types.ts";
import { CANONICAL_FILES, fixture, listItems, realPods, watchEvents } from "./fixtures/k8s/load.ts";

const REAL_POD = "real/kind-v1.36.2/core.v1.Pod.json";
const REAL_NODE = "real/minikube-v1.15.2-2019/core.v1.Node.json";
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

function clone<T>(value: T): T {
  return structuredClone(value);
}

async function realObjects(): Promise<KubeObject[]> {
  return [
    ...(await realPods()),
    ...(await watchEvents("real/kind-v1.36.2/watch.core.v1.pods.ndjson")).map((event) => event.object),
    await fixture("real/kind-v1.36.2/apps.v1.Deployment.json"),
    ...(await listItems("real/kind-v1.36.2/apps.v1.DeploymentList.json")).map((item) => ({ ...item, kind: "Deployment" })),
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

  test("the real pod keeps what telemetry needs and nothing else", async () => {
    expect(slim("Pod", await fixture(REAL_POD))).toEqual({
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name: "coredns-589f44dc88-4fpns",
        namespace: "kube-system",
        uid: "f78db027-d69e-485e-9a9e-a6dc7493b6d7",
        creationTimestamp: "2026-06-15T04:14:53Z",
        labels: { "k8s-app": "kube-dns", "pod-template-hash": "589f44dc88" },
        ownerReferences: [
          { kind: "ReplicaSet", name: "coredns-589f44dc88", uid: "57cc966c-798b-4b89-9fbe-543ed85b5981", controller: true },
        ],
      },
      spec: {
        nodeName: "v1.36-control-plane",
        serviceAccountName: "coredns",
        containers: [
          {
            name: "coredns",
            image: "registry.k8s.io/coredns/coredns:v1.14.2",
            ports: [
              { name: "dns", containerPort: 53, protocol: "UDP" },
              { name: "dns-tcp", containerPort: 53 },
              { name: "metrics", containerPort: 9153 },
              { name: "liveness-probe", containerPort: 8080 },
              { name: "readiness-probe", containerPort: 8181 },
            ],
          },
        ],
      },
      status: {
        phase: "Running",
        podIP: "10.244.0.3",
        hostIP: "172.18.0.3",
        qosClass: "Burstable",
        startTime: "2026-06-15T04:15:04Z",
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: [
          {
            name: "coredns",
            containerID: "containerd://d23296cf3c445ba94bd83b4f0a05d6229c024170e719ea9f8fef7bab8550a480",
            imageID: "sha256:38667dd9be96c17227adde456e33ad701bdbdc5c6db0272a1d33a929bd8e62d6",
            ready: true,
            restartCount: 0,
            state: { running: {} },
          },
        ],
      },
    });
  });

  test("a slim pod is at most a quarter of the raw one and 1.25 KB", async () => {
    const sizes: string[] = [];
    // The kind cluster's pods are complete captures (the OpenShift ones were trimmed by hand).
    const kindPods = [
      ...(await listItems("real/kind-v1.36.2/core.v1.PodList.json")),
      ...(await listItems("real/kind-v1.36.2/core.v1.PodList.job-pod.json")),
    ];
    for (const raw of [await fixture(REAL_POD), await fixture("core.v1.Pod.json"), ...kindPods]) {
      const rawBytes = JSON.stringify(raw).length;
      const slimBytes = JSON.stringify(slim("Pod", raw)).length;
      sizes.push(`${raw.metadata!.name}: raw ${rawBytes} B, slim ${slimBytes} B`);
      expect(slimBytes).toBeLessThan(rawBytes / 4);
      expect(slimBytes).toBeLessThan(raw.metadata!.name === "nameValue" ? 2048 : 1280);
    }
    console.log(`pod sizes (compact JSON):\n  ${sizes.join("\n  ")}`);
  });

  test("env values never appear, whatever the container", async () => {
    const kindnet = (await listItems("real/kind-v1.36.2/core.v1.PodList.json")).find((pod) => pod.metadata?.name?.startsWith("kindnet"))!;
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
    for (const leaked of ["aHVudGVyMg==", "hunter2", "token-in-annotation"]) expect(JSON.stringify(slimObject)).not.toContain(leaked);
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
      Object.keys((slim("Deployment", deployment, { annotationAllowList }).metadata as { annotations?: object }).annotations ?? {});
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
    expect(annotationsWith(["deployment.kubernetes.io/rev*", "tea", "prometheus.io"])).toEqual(["deployment.kubernetes.io/revision"]);
  });

  test("the Node keeps addresses, readiness and versions, not heartbeats, images or capacity", async () => {
    const node = await fixture(REAL_NODE);
    expect(slim("Node", node)).toEqual({
      kind: "Node",
      apiVersion: "v1",
      metadata: {
        name: "minikube",
        uid: "3a554aa2-fee7-435b-ae1b-e67bdaac069a",
        creationTimestamp: "2019-08-26T21:52:09Z",
        labels: {
          "beta.kubernetes.io/arch": "amd64",
          "beta.kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          "kubernetes.io/hostname": "minikube",
          "kubernetes.io/os": "linux",
          "node-role.kubernetes.io/master": "",
        },
      },
      status: {
        addresses: [
          { type: "InternalIP", address: "192.168.64.107" },
          { type: "Hostname", address: "minikube" },
        ],
        conditions: [{ type: "Ready", status: "True" }],
        nodeInfo: {
          kubeletVersion: "v1.15.2",
          containerRuntimeVersion: "docker://18.9.8",
          osImage: "Buildroot 2018.05.3",
          kernelVersion: "4.15.0",
          operatingSystem: "linux",
          architecture: "amd64",
        },
      },
    });
    const canonical = slim("Node", await fixture("core.v1.Node.json"));
    expect(canonical.spec).toEqual({ podCIDR: "podCIDRValue", providerID: "providerIDValue", podCIDRs: ["podCIDRsValue"] });
  });

  test("Service: type, IPs, ports, selector and load-balancer ingress", async () => {
    expect(slim("Service", await fixture("real/kubectl-edit-2017/core.v1.Service.json")).spec).toEqual({
      type: "ClusterIP",
      clusterIP: "10.0.0.146",
      ports: [{ name: "80", port: 80, targetPort: 80 }],
      selector: { app: "svc1" },
    });
    const canonical = slim("Service", await fixture("core.v1.Service.json"));
    expect(canonical.spec).toMatchObject({
      clusterIPs: ["clusterIPsValue"],
      externalIPs: ["externalIPsValue"],
      ports: [{ name: "nameValue", protocol: "protocolValue", port: 3, targetPort: "targetPortValue", nodePort: 5 }],
    });
    expect(canonical.status).toEqual({ loadBalancer: { ingress: [{ ip: "ipValue", hostname: "hostnameValue" }] } });
  });

  test("EndpointSlice: addresses with readiness, node, zone and target pod", async () => {
    const slimObject = slim("EndpointSlice", await fixture("discovery.k8s.io.v1.EndpointSlice.json"));
    expect(slimObject.addressType).toBe("addressTypeValue");
    expect(slimObject.endpoints).toEqual([
      {
        addresses: ["addressesValue"],
        conditions: { ready: true },
        nodeName: "nodeNameValue",
        zone: "zoneValue",
        targetRef: { kind: "kindValue", namespace: "namespaceValue", name: "nameValue", uid: "uidValue" },
      },
    ]);
    expect(slimObject.ports).toEqual([{ name: "nameValue", protocol: "protocolValue", port: 3 }]);
  });

  test("workloads: selector, template labels and replica counts", async () => {
    const [coredns] = await listItems("real/kind-v1.36.2/apps.v1.DeploymentList.json");
    expect(slim("Deployment", coredns!)).toMatchObject({
      apiVersion: "apps/v1",
      spec: { replicas: 2, selector: { matchLabels: { "k8s-app": "kube-dns" } }, template: { metadata: { labels: { "k8s-app": "kube-dns" } } } },
      status: { replicas: 2, readyReplicas: 2, availableReplicas: 2 },
    });
    expect(slim("Job", await fixture("real/kind-v1.36.2/batch.v1.Job.json")).status).toEqual({ failed: 1, startTime: "2026-06-15T04:15:57Z" });
    expect(slim("DaemonSet", await fixture("apps.v1.DaemonSet.json")).status).toEqual({
      desiredNumberScheduled: 3,
      currentNumberScheduled: 1,
      numberReady: 4,
    });
    expect(slim("StatefulSet", await fixture("apps.v1.StatefulSet.json")).spec).toMatchObject({ replicas: 1, serviceName: "serviceNameValue" });
    expect(slim("ReplicaSet", await fixture("apps.v1.ReplicaSet.json")).status).toEqual({ replicas: 1, readyReplicas: 4, availableReplicas: 5 });
    const cronJob: KubeObject = {
      kind: "CronJob",
      apiVersion: "batch/v1",
      metadata: { name: "backup", namespace: "ops", uid: "c-1", resourceVersion: "9" },
      spec: {
        schedule: "0 3 * * *",
        timeZone: "Etc/UTC",
        suspend: false,
        concurrencyPolicy: "Forbid",
        jobTemplate: { spec: { template: { metadata: { labels: { app: "backup" } }, spec: { containers: [{ name: "b", image: "b" }] } } } },
      },
      status: { lastScheduleTime: "2026-06-15T03:00:00Z", lastSuccessfulTime: "2026-06-15T03:01:00Z", active: [{ kind: "Job", name: "backup-1" }] },
    };
    expect(slim("CronJob", cronJob)).toEqual({
      kind: "CronJob",
      apiVersion: "batch/v1",
      metadata: { name: "backup", namespace: "ops", uid: "c-1" },
      spec: { schedule: "0 3 * * *", timeZone: "Etc/UTC", suspend: false, jobTemplate: { spec: { template: { metadata: { labels: { app: "backup" } } } } } },
      status: { lastScheduleTime: "2026-06-15T03:00:00Z" },
    });
  });

  test("Namespace keeps its phase; any other kind keeps metadata only", async () => {
    expect(slim("Namespace", await fixture("core.v1.Namespace.json")).status).toEqual({ phase: "phaseValue" });
    expect(slim("ConfigMap", await fixture("real/kubectl-edit-2017/core.v1.ConfigMap.json"))).toEqual({
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "cm1", namespace: "edit-test", uid: "b09bffab-e9d7-11e6-8c3b-acbc32c1ca87", creationTimestamp: "2017-02-03T06:12:07Z" },
    });
    const [fooBar] = await watchEvents("real/kind-v1.36.2/watch.cr.foobars.ndjson");
    expect(Object.keys(slim("FooBar", fooBar!.object))).toEqual(["kind", "apiVersion", "metadata"]);
    expect(slim("FooBar", fooBar!.object).apiVersion).toBe("k8s-openapi-tests-custom-resource-definition.com/v1");
  });

  test("odd input and tombstones never throw; what is there is kept", () => {
    const kinds = ["Pod", "Node", "Service", "EndpointSlice", "Namespace", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Secret", "Widget", "__defineGetter__", "toString"];
    const odd: unknown[] = [
      null,
      undefined,
      "Pod",
      42,
      [],
      { metadata: "x", spec: [], status: 5 },
      { metadata: { labels: ["a"], ownerReferences: {}, annotations: null }, spec: { containers: "c", selector: [] }, status: { conditions: {} } },
      { spec: { containers: [null, "x", { name: 5, ports: [1, { containerPort: "53" }] }], template: 3, jobTemplate: [] }, endpoints: [null] },
      { status: { containerStatuses: [{ name: "c", state: { running: null, waiting: "w" } }], podIPs: [{ ip: {} }], addresses: [[]] } },
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
    const mixed = slim("Pod", { metadata: { name: "p", labels: { good: "yes", bad: 1 } }, spec: { containers: [null, { name: "c", ports: [1, { containerPort: 53 }] }] } });
    expect(mixed).toEqual({ kind: "Pod", apiVersion: "v1", metadata: { name: "p", labels: { good: "yes" } }, spec: { containers: [{ name: "c", ports: [{ containerPort: 53 }] }] } });
  });

  test("dual-stack pods keep every pod and host IP", async () => {
    const pod = await fixture(REAL_POD);
    const status = pod.status as Record<string, unknown>;
    status.podIPs = [{ ip: "10.244.0.3" }, { ip: "fd00:10:244::3" }];
    expect((slim("Pod", pod).status as Record<string, unknown>).podIPs).toEqual([{ ip: "10.244.0.3" }, { ip: "fd00:10:244::3" }]);
  });
});

describe("digest", () => {
  test("is a non-negative safe integer, the same in every process (digests are persisted)", () => {
    const value = digest({ kind: "Pod", metadata: { name: "a" } });
    expect(Number.isSafeInteger(value) && value >= 0).toBe(true);
    expect(value).toBe(2117301313019823);
  });

  test("a listed object digests like the same object from a watch event", async () => {
    const listed = await listItems("real/kind-v1.36.2/core.v1.PodList.json");
    const events = await watchEvents("real/kind-v1.36.2/watch.core.v1.pods.ndjson");
    expect(events.length).toBeGreaterThan(0);
    for (const { object } of events) {
      const item = listed.find((pod) => pod.metadata?.uid === object.metadata?.uid)!;
      expect(item.metadata!.resourceVersion).toBe(object.metadata!.resourceVersion!);
      expect(item.kind).toBeUndefined();
      expect(digest(slim("Pod", item))).toBe(digest(slim("Pod", object)));
    }
  });

  test("Node heartbeats and pod writes that change nothing telemetry uses give the same digest", async () => {
    const node = await fixture(REAL_NODE);
    const heartbeat = clone(node);
    heartbeat.metadata!.resourceVersion = "500999";
    const nodeStatus = heartbeat.status as { conditions: { lastHeartbeatTime: string }[]; allocatable: Record<string, string> };
    for (const condition of nodeStatus.conditions) condition.lastHeartbeatTime = "2019-08-31T04:43:21Z";
    nodeStatus.allocatable.memory = "8063000Ki";
    expect(digest(slim("Node", heartbeat))).toBe(digest(slim("Node", node)));

    const pod = await fixture(REAL_POD);
    const rewritten = clone(pod);
    rewritten.metadata!.resourceVersion = "999";
    rewritten.metadata!.generation = 2;
    (rewritten.metadata!.managedFields as { time: string }[])[0]!.time = "2026-06-15T05:00:00Z";
    const podStatus = rewritten.status as { conditions: { lastTransitionTime: string }[]; observedGeneration: number };
    for (const condition of podStatus.conditions) condition.lastTransitionTime = "2026-06-15T05:00:00Z";
    podStatus.observedGeneration = 2;
    expect(digest(slim("Pod", rewritten))).toBe(digest(slim("Pod", pod)));
  });

  test("a waiting container's reason flapping is not an update; leaving waiting is", () => {
    const waiting = (reason: string, state = "waiting") => ({
      metadata: { name: "p", uid: "u" },
      status: { containerStatuses: [{ name: "c", ready: false, state: { [state]: { reason, message: `Back-off pulling image (${reason})` } } }] },
    });
    expect(digest(slim("Pod", waiting("ErrImagePull")))).toBe(digest(slim("Pod", waiting("ImagePullBackOff"))));
    expect(digest(slim("Pod", waiting("ImagePullBackOff")))).not.toBe(digest(slim("Pod", waiting("", "running"))));
  });

  test("map key order does not matter", async () => {
    const pod = await fixture(REAL_POD);
    const reordered = clone(pod);
    reordered.metadata!.labels = { "pod-template-hash": "589f44dc88", "k8s-app": "kube-dns" };
    expect(digest(slim("Pod", reordered))).toBe(digest(slim("Pod", pod)));
  });

  test("a label, phase, IP, readiness or deletion change gives another digest", async () => {
    const pod = await fixture(REAL_POD);
    const before = digest(slim("Pod", pod));
    const changes: ((raw: KubeObject & { status: Record<string, any> }) => void)[] = [
      (raw) => ((raw.metadata!.labels as Record<string, string>)["k8s-app"] = "kube-dns-v2"),
      (raw) => (raw.status.phase = "Succeeded"),
      (raw) => (raw.status.podIP = "10.244.0.4"),
      (raw) => (raw.status.conditions.find((c: { type: string }) => c.type === "Ready").status = "False"),
      (raw) => (raw.status.containerStatuses[0].ready = false),
      (raw) => (raw.metadata!.deletionTimestamp = "2026-06-15T06:00:00Z"),
    ];
    const digests = new Set([before]);
    for (const change of changes) {
      const changed = clone(pod) as KubeObject & { status: Record<string, any> };
      change(changed);
      digests.add(digest(slim("Pod", changed)));
    }
    expect(digests.size).toBe(changes.length + 1);
  });
});
