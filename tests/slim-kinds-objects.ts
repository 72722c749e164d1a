/**
 * Made objects of the kinds outside the workloads (Ingress, HPA, PVC, Gateway, HTTPRoute) for
 * tests/slim-kinds-more.test.ts: each fills the fields its slim rule keeps and some it drops.
 */
import type { KubeObject } from "../sdk/model.ts";

export function ingress(): KubeObject {
  return {
    kind: "Ingress",
    apiVersion: "networking.k8s.io/v1",
    metadata: {
      name: "shop",
      namespace: "shop",
      uid: "3b0c7f0e-5d1a-4a8e-9a53-2f6f0c1d7e21",
      resourceVersion: "91822",
      generation: 3,
      creationTimestamp: "2026-05-02T09:12:44Z",
      labels: { app: "shop" },
      annotations: {
        "cert-manager.io/cluster-issuer": "letsencrypt",
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
      },
    },
    spec: {
      ingressClassName: "nginx",
      tls: [{ hosts: ["shop.example.com", "api.shop.example.com"], secretName: "shop-tls" }],
      rules: [
        {
          host: "shop.example.com",
          http: {
            paths: [
              { path: "/", pathType: "Prefix", backend: { service: { name: "web", port: { number: 80 } } } },
              {
                path: "/static",
                pathType: "Prefix",
                backend: { resource: { apiGroup: "k8s.example.com", kind: "StorageBucket", name: "static-assets" } },
              },
            ],
          },
        },
        {
          host: "api.shop.example.com",
          http: {
            paths: [
              {
                path: "/v1",
                pathType: "ImplementationSpecific",
                backend: { service: { name: "api", port: { name: "http" } } },
              },
            ],
          },
        },
      ],
    },
    status: { loadBalancer: { ingress: [{ ip: "203.0.113.10", ports: [{ port: 443, protocol: "TCP" }] }] } },
  };
}

export function hpa(): KubeObject {
  return {
    kind: "HorizontalPodAutoscaler",
    apiVersion: "autoscaling/v2",
    metadata: {
      name: "web",
      namespace: "shop",
      uid: "5c2e1d0a-7f3b-4e6c-8a9d-1b2c3d4e5f60",
      resourceVersion: "77120",
      creationTimestamp: "2026-05-02T09:12:44Z",
    },
    spec: {
      scaleTargetRef: { kind: "Deployment", name: "web", apiVersion: "apps/v1" },
      minReplicas: 2,
      maxReplicas: 10,
      metrics: [
        { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
        {
          type: "Pods",
          pods: {
            metric: { name: "http_requests_per_second", selector: { matchLabels: { verb: "GET" } } },
            target: { type: "AverageValue", averageValue: "100" },
          },
        },
        {
          type: "Object",
          object: {
            describedObject: { kind: "Ingress", name: "shop", apiVersion: "networking.k8s.io/v1" },
            target: { type: "Value", value: "2k" },
            metric: { name: "requests_per_second" },
          },
        },
        {
          type: "ContainerResource",
          containerResource: {
            name: "memory",
            target: { type: "Utilization", averageUtilization: 80 },
            container: "web",
          },
        },
      ],
      behavior: {
        scaleDown: {
          stabilizationWindowSeconds: 300,
          selectPolicy: "Max",
          policies: [{ type: "Percent", value: 10, periodSeconds: 60 }],
        },
      },
    },
    status: {
      observedGeneration: 2,
      lastScaleTime: "2026-05-02T10:01:00Z",
      currentReplicas: 4,
      desiredReplicas: 5,
      currentMetrics: [
        { type: "Resource", resource: { name: "cpu", current: { averageValue: "412m", averageUtilization: 82 } } },
      ],
      conditions: [
        {
          type: "AbleToScale",
          status: "True",
          lastTransitionTime: "2026-05-02T09:13:00Z",
          reason: "ReadyForNewScale",
          message: "recommended size matches current size",
        },
      ],
    },
  };
}

export function pvc(): KubeObject {
  return {
    kind: "PersistentVolumeClaim",
    apiVersion: "v1",
    metadata: {
      name: "data-postgres-0",
      namespace: "db",
      uid: "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
      resourceVersion: "5521",
      creationTimestamp: "2026-05-02T09:12:44Z",
      labels: { app: "postgres" },
      annotations: {
        "pv.kubernetes.io/bind-completed": "yes",
        "volume.kubernetes.io/selected-node": "ip-10-0-1-23.eu-west-1.compute.internal",
        "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
      },
      finalizers: ["kubernetes.io/pvc-protection"],
    },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "20Gi" } },
      volumeName: "pvc-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
      storageClassName: "gp3",
      volumeMode: "Filesystem",
    },
    status: { phase: "Bound", accessModes: ["ReadWriteOnce"], capacity: { storage: "20Gi" } },
  };
}

export function gateway(): KubeObject {
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: {
      name: "external",
      namespace: "infra",
      uid: "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
      resourceVersion: "1200",
      generation: 2,
      creationTimestamp: "2026-05-02T09:12:44Z",
    },
    spec: {
      gatewayClassName: "istio",
      listeners: [
        {
          name: "http",
          hostname: "*.example.com",
          port: 80,
          protocol: "HTTP",
          allowedRoutes: { namespaces: { from: "All" } },
        },
        {
          name: "https",
          hostname: "*.example.com",
          port: 443,
          protocol: "HTTPS",
          tls: { mode: "Terminate", certificateRefs: [{ group: "", kind: "Secret", name: "wildcard-tls" }] },
          allowedRoutes: { namespaces: { from: "Same" } },
        },
      ],
    },
    status: {
      addresses: [{ type: "IPAddress", value: "203.0.113.20" }],
      conditions: [
        {
          type: "Programmed",
          status: "True",
          observedGeneration: 2,
          lastTransitionTime: "2026-05-02T09:13:10Z",
          reason: "Programmed",
          message: "Resource programmed",
        },
      ],
      listeners: [
        {
          name: "http",
          attachedRoutes: 3,
          supportedKinds: [{ group: "gateway.networking.k8s.io", kind: "HTTPRoute" }],
        },
      ],
    },
  };
}

export function httpRoute(): KubeObject {
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: {
      name: "shop",
      namespace: "shop",
      uid: "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
      resourceVersion: "1300",
      generation: 1,
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
          filters: [
            { type: "RequestHeaderModifier", requestHeaderModifier: { add: [{ name: "x-via", value: "gw" }] } },
          ],
          backendRefs: [{ group: "", kind: "Service", name: "api-canary", port: 8080, weight: 10 }],
        },
        {
          matches: [{ path: { type: "PathPrefix", value: "/" } }],
          backendRefs: [{ group: "", kind: "Service", name: "web", port: 80, weight: 1 }],
          timeouts: { request: "10s" },
        },
      ],
    },
    status: {
      parents: [
        {
          parentRef: { group: "gateway.networking.k8s.io", kind: "Gateway", namespace: "infra", name: "external" },
          controllerName: "istio.io/gateway-controller",
          conditions: [{ type: "Accepted", status: "True", lastTransitionTime: "2026-05-02T09:13:10Z" }],
        },
      ],
    },
  };
}

/** A CronJob with its fields filled (no fixture of the kind was recorded). */
export function cronJob(): KubeObject {
  return {
    kind: "CronJob",
    apiVersion: "batch/v1",
    metadata: { name: "backup", namespace: "ops", uid: "c-1", resourceVersion: "9" },
    spec: {
      schedule: "0 3 * * *",
      timeZone: "Etc/UTC",
      suspend: false,
      concurrencyPolicy: "Forbid",
      jobTemplate: {
        spec: {
          template: { metadata: { labels: { app: "backup" } }, spec: { containers: [{ name: "b", image: "b" }] } },
        },
      },
    },
    status: {
      lastScheduleTime: "2026-06-15T03:00:00Z",
      lastSuccessfulTime: "2026-06-15T03:01:00Z",
      active: [{ kind: "Job", name: "backup-1" }],
    },
  };
}
