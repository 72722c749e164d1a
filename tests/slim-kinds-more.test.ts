/** slim of the kinds outside the workloads: Ingress, autoscaling, storage and the Gateway API. */
import { describe, expect, test } from "bun:test";
import { digest, slim } from "../core/slim.ts";
import { gateway, hpa, httpRoute, ingress, pvc } from "./slim-kinds-objects.ts";
import { fixture } from "./fixtures/k8s/load.ts";

describe("slim: ingress, autoscaling, storage and Gateway API kinds", () => {
  test("Ingress: class, rules with hosts, paths and backends, TLS hosts, load-balancer ingress", () => {
    expect(slim("Ingress", ingress())).toEqual({
      kind: "Ingress",
      apiVersion: "networking.k8s.io/v1",
      metadata: {
        name: "shop",
        namespace: "shop",
        uid: "3b0c7f0e-5d1a-4a8e-9a53-2f6f0c1d7e21",
        creationTimestamp: "2026-05-02T09:12:44Z",
        labels: { app: "shop" },
      },
      spec: {
        ingressClassName: "nginx",
        tls: [{ hosts: ["shop.example.com", "api.shop.example.com"] }],
        // Hosts, paths and backends are kept whole.
        rules: (ingress().spec as { rules: unknown }).rules,
      },
      status: { loadBalancer: { ingress: [{ ip: "203.0.113.10" }] } },
    });
  });

  test("HorizontalPodAutoscaler: target, bounds, metrics and targets, replica counts; a sync is no update", () => {
    const slimObject = slim("HorizontalPodAutoscaler", hpa());
    expect(slimObject).toEqual({
      kind: "HorizontalPodAutoscaler",
      apiVersion: "autoscaling/v2",
      metadata: {
        name: "web",
        namespace: "shop",
        uid: "5c2e1d0a-7f3b-4e6c-8a9d-1b2c3d4e5f60",
        creationTimestamp: "2026-05-02T09:12:44Z",
      },
      spec: {
        minReplicas: 2,
        maxReplicas: 10,
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
        metrics: [
          { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
          {
            type: "Pods",
            pods: {
              metric: { name: "http_requests_per_second" },
              target: { type: "AverageValue", averageValue: "100" },
            },
          },
          {
            type: "Object",
            object: {
              describedObject: { apiVersion: "networking.k8s.io/v1", kind: "Ingress", name: "shop" },
              metric: { name: "requests_per_second" },
              target: { type: "Value", value: "2k" },
            },
          },
          {
            type: "ContainerResource",
            containerResource: {
              name: "memory",
              container: "web",
              target: { type: "Utilization", averageUtilization: 80 },
            },
          },
        ],
      },
      status: { currentReplicas: 4, desiredReplicas: 5 },
    });
    const synced = hpa();
    const status = synced.status as { currentMetrics: { resource: { current: object } }[]; lastScaleTime: string };
    status.currentMetrics[0]!.resource.current = { averageValue: "530m", averageUtilization: 91 };
    status.lastScaleTime = "2026-05-02T10:31:00Z";
    expect(digest(slim("HorizontalPodAutoscaler", synced))).toBe(digest(slimObject));
  });

  test("PersistentVolumeClaim: class, volume, access modes, requested storage, phase, capacity", () => {
    expect(slim("PersistentVolumeClaim", pvc())).toEqual({
      kind: "PersistentVolumeClaim",
      apiVersion: "v1",
      metadata: {
        name: "data-postgres-0",
        namespace: "db",
        uid: "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
        creationTimestamp: "2026-05-02T09:12:44Z",
        labels: { app: "postgres" },
      },
      spec: {
        storageClassName: "gp3",
        volumeName: "pvc-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: "20Gi" } },
      },
      status: { phase: "Bound", capacity: { storage: "20Gi" } },
    });
  });

  test("Gateway: class, listeners' name, hostname, port and protocol, status addresses", () => {
    expect(slim("Gateway", gateway())).toEqual({
      kind: "Gateway",
      apiVersion: "gateway.networking.k8s.io/v1",
      metadata: {
        name: "external",
        namespace: "infra",
        uid: "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        creationTimestamp: "2026-05-02T09:12:44Z",
      },
      spec: {
        gatewayClassName: "istio",
        listeners: [
          { name: "http", hostname: "*.example.com", port: 80, protocol: "HTTP" },
          { name: "https", hostname: "*.example.com", port: 443, protocol: "HTTPS" },
        ],
      },
      status: { addresses: [{ type: "IPAddress", value: "203.0.113.20" }] },
    });
  });

  test("HTTPRoute: parent refs, hostnames, rules' matches and backend refs", () => {
    expect(slim("HTTPRoute", httpRoute())).toEqual({
      kind: "HTTPRoute",
      apiVersion: "gateway.networking.k8s.io/v1",
      metadata: {
        name: "shop",
        namespace: "shop",
        uid: "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
        creationTimestamp: "2026-05-02T09:12:44Z",
      },
      spec: {
        parentRefs: [
          {
            group: "gateway.networking.k8s.io",
            kind: "Gateway",
            namespace: "infra",
            name: "external",
            sectionName: "https",
          },
        ],
        hostnames: ["shop.example.com"],
        rules: [
          {
            matches: [
              {
                path: { type: "PathPrefix", value: "/api" },
                headers: [{ type: "Exact", name: "x-canary", value: "true" }],
                method: "GET",
              },
            ],
            backendRefs: [{ group: "", kind: "Service", name: "api-canary", port: 8080, weight: 10 }],
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/" } }],
            backendRefs: [{ group: "", kind: "Service", name: "web", port: 80, weight: 1 }],
          },
        ],
      },
    });
  });

  test("a custom resource with a built-in's kind is a custom resource: its own apiVersion, metadata, its rule", () => {
    const metadata = { name: "hello", namespace: "shop", uid: "u-1", labels: { app: "hello" } };
    const knative = {
      kind: "Service",
      apiVersion: "serving.knative.dev/v1",
      metadata,
      spec: { template: { spec: { containers: [{ image: "ghcr.io/example/hello" }] } }, type: "not-a-core-field" },
    };
    expect(slim("Service", knative)).toEqual({ kind: "Service", apiVersion: "serving.knative.dev/v1", metadata });
    const rules = { kinds: { Service: { keep: ["spec.template"] } } };
    expect(slim("Service", knative, rules)).toEqual({
      kind: "Service",
      apiVersion: "serving.knative.dev/v1",
      metadata,
      spec: { template: knative.spec.template },
    });
    const istio = { ...gateway(), apiVersion: "networking.istio.io/v1" };
    expect(slim("Gateway", istio)).toEqual({
      kind: "Gateway",
      apiVersion: "networking.istio.io/v1",
      metadata: slim("Gateway", gateway()).metadata,
    });
  });

  test("another version of a built-in's group is the built-in, with the apiVersion it was read at", () => {
    // A cluster whose Gateway API predates v1 serves gateway.networking.k8s.io/v1beta1 alone.
    expect(slim("Gateway", { ...gateway(), apiVersion: "gateway.networking.k8s.io/v1beta1" })).toEqual({
      ...slim("Gateway", gateway()),
      apiVersion: "gateway.networking.k8s.io/v1beta1",
    });
    const hpaV1 = { ...hpa(), apiVersion: "autoscaling/v1" };
    expect(slim("HorizontalPodAutoscaler", hpaV1)).toEqual({
      ...slim("HorizontalPodAutoscaler", hpa()),
      apiVersion: "autoscaling/v1",
    });
    // A list item comes without one: the built-in's own.
    const { apiVersion: _, ...listItem } = gateway();
    expect(slim("Gateway", listItem)).toEqual(slim("Gateway", gateway()));
  });

  test("an autoscaling/v1 HorizontalPodAutoscaler keeps its metric's target: targetCPUUtilizationPercentage", () => {
    const { metrics: _metrics, ...specV1 } = hpa().spec as Record<string, unknown>;
    const hpaV1 = {
      ...hpa(),
      apiVersion: "autoscaling/v1",
      spec: { ...specV1, targetCPUUtilizationPercentage: 70 },
      status: { currentReplicas: 3, desiredReplicas: 4, currentCPUUtilizationPercentage: 64 },
    };
    const v2 = slim("HorizontalPodAutoscaler", hpa());
    const { metrics: _slimMetrics, ...slimSpec } = v2.spec as Record<string, unknown>;
    // v1's one metric is its CPU target; the current value, rewritten on every sync, is left out as v2's are.
    expect(slim("HorizontalPodAutoscaler", hpaV1)).toEqual({
      ...v2,
      apiVersion: "autoscaling/v1",
      spec: { ...slimSpec, targetCPUUtilizationPercentage: 70 },
      status: { currentReplicas: 3, desiredReplicas: 4 },
    });
  });

  test("the canonical Ingress, HPA and PVC (every field filled) keep exactly the fields above", async () => {
    expect(slim("Ingress", await fixture("networking.k8s.io.v1.Ingress.json")).spec).toEqual({
      ingressClassName: "ingressClassNameValue",
      defaultBackend: {
        service: { name: "nameValue", port: { name: "nameValue", number: 2 } },
        resource: { apiGroup: "apiGroupValue", kind: "kindValue", name: "nameValue" },
      },
      tls: [{ hosts: ["hostsValue"] }],
      rules: [
        {
          host: "hostValue",
          http: {
            paths: [
              {
                path: "pathValue",
                pathType: "pathTypeValue",
                backend: {
                  service: { name: "nameValue", port: { name: "nameValue", number: 2 } },
                  resource: { apiGroup: "apiGroupValue", kind: "kindValue", name: "nameValue" },
                },
              },
            ],
          },
        },
      ],
    });
    const target = { type: "typeValue", value: "0", averageValue: "0", averageUtilization: 4 };
    const hpaSlim = slim("HorizontalPodAutoscaler", await fixture("autoscaling.v2.HorizontalPodAutoscaler.json"));
    expect(hpaSlim.spec).toEqual({
      minReplicas: 2,
      maxReplicas: 3,
      scaleTargetRef: { apiVersion: "apiVersionValue", kind: "kindValue", name: "nameValue" },
      metrics: [
        {
          type: "typeValue",
          resource: { name: "nameValue", target },
          containerResource: { name: "nameValue", container: "containerValue", target },
          pods: { metric: { name: "nameValue" }, target },
          object: {
            describedObject: { apiVersion: "apiVersionValue", kind: "kindValue", name: "nameValue" },
            metric: { name: "nameValue" },
            target,
          },
          external: { metric: { name: "nameValue" }, target },
        },
      ],
    });
    expect(hpaSlim.status).toEqual({ currentReplicas: 3, desiredReplicas: 4 });
    const pvcSlim = slim("PersistentVolumeClaim", await fixture("core.v1.PersistentVolumeClaim.json"));
    expect([pvcSlim.spec, pvcSlim.status]).toEqual([
      {
        storageClassName: "storageClassNameValue",
        volumeName: "volumeNameValue",
        accessModes: ["accessModesValue"],
      },
      { phase: "phaseValue", capacity: { capacityKey: "0" } },
    ]);
  });
});
