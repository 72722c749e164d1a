/** slim keeps, per kind, what telemetry needs: identity, placement, addresses, readiness, replica counts. */
import { describe, expect, test } from "bun:test";
import { slim } from "../core/slim.ts";
import { fixture, listItems, watchEvents } from "./fixtures/k8s/load.ts";
import { REAL_NODE, REAL_POD } from "./slim-fixtures.ts";
import { cronJob } from "./slim-kinds-objects.ts";

describe("slim", () => {
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
          {
            kind: "ReplicaSet",
            name: "coredns-589f44dc88",
            uid: "57cc966c-798b-4b89-9fbe-543ed85b5981",
            controller: true,
          },
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
    expect(canonical.spec).toEqual({
      podCIDR: "podCIDRValue",
      providerID: "providerIDValue",
      podCIDRs: ["podCIDRsValue"],
    });
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
      spec: {
        replicas: 2,
        selector: { matchLabels: { "k8s-app": "kube-dns" } },
        template: { metadata: { labels: { "k8s-app": "kube-dns" } } },
      },
      status: { replicas: 2, readyReplicas: 2, availableReplicas: 2 },
    });
    expect(slim("Job", await fixture("real/kind-v1.36.2/batch.v1.Job.json")).status).toEqual({
      failed: 1,
      startTime: "2026-06-15T04:15:57Z",
    });
    expect(slim("DaemonSet", await fixture("apps.v1.DaemonSet.json")).status).toEqual({
      desiredNumberScheduled: 3,
      currentNumberScheduled: 1,
      numberReady: 4,
    });
    expect(slim("StatefulSet", await fixture("apps.v1.StatefulSet.json")).spec).toMatchObject({
      replicas: 1,
      serviceName: "serviceNameValue",
    });
    expect(slim("ReplicaSet", await fixture("apps.v1.ReplicaSet.json")).status).toEqual({
      replicas: 1,
      readyReplicas: 4,
      availableReplicas: 5,
    });
    expect(slim("CronJob", cronJob())).toEqual({
      kind: "CronJob",
      apiVersion: "batch/v1",
      metadata: { name: "backup", namespace: "ops", uid: "c-1" },
      spec: {
        schedule: "0 3 * * *",
        timeZone: "Etc/UTC",
        suspend: false,
        jobTemplate: { spec: { template: { metadata: { labels: { app: "backup" } } } } },
      },
      status: { lastScheduleTime: "2026-06-15T03:00:00Z" },
    });
  });

  test("Namespace keeps its phase; any other kind keeps metadata only", async () => {
    expect(slim("Namespace", await fixture("core.v1.Namespace.json")).status).toEqual({ phase: "phaseValue" });
    expect(slim("ConfigMap", await fixture("real/kubectl-edit-2017/core.v1.ConfigMap.json"))).toEqual({
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: {
        name: "cm1",
        namespace: "edit-test",
        uid: "b09bffab-e9d7-11e6-8c3b-acbc32c1ca87",
        creationTimestamp: "2017-02-03T06:12:07Z",
      },
    });
    const [fooBar] = await watchEvents("real/kind-v1.36.2/watch.cr.foobars.ndjson");
    expect(Object.keys(slim("FooBar", fooBar!.object))).toEqual(["kind", "apiVersion", "metadata"]);
    expect(slim("FooBar", fooBar!.object).apiVersion).toBe("k8s-openapi-tests-custom-resource-definition.com/v1");
  });

  test("dual-stack pods keep every pod and host IP", async () => {
    const pod = await fixture(REAL_POD);
    const status = pod.status as Record<string, unknown>;
    status.podIPs = [{ ip: "10.244.0.3" }, { ip: "fd00:10:244::3" }];
    expect((slim("Pod", pod).status as Record<string, unknown>).podIPs).toEqual([
      { ip: "10.244.0.3" },
      { ip: "fd00:10:244::3" },
    ]);
  });
});
