/** Real captures and made objects the slim and digest tests share. */
import type { KubeObject } from "../sdk/model.ts";

export const REAL_POD = "real/kind-v1.36.2/core.v1.Pod.json";
export const REAL_NODE = "real/minikube-v1.15.2-2019/core.v1.Node.json";

export const NODE = "ip-10-0-1-23.eu-west-1.compute.internal";

/** A KubeVirt VirtualMachineInstance: a custom kind bound to a node (status.nodeName), like a Pod. */
export function vmi(name: string, nodeName?: unknown): KubeObject {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: "vms", uid: `uid-${name}`, resourceVersion: "10", labels: { "kubevirt.io/vm": name } },
    spec: { domain: { cpu: { cores: 2 }, memory: { guest: "4Gi" } } },
    status: {
      phase: nodeName === undefined ? "Scheduling" : "Running",
      ...(nodeName === undefined ? {} : { nodeName }),
      interfaces: [{ ipAddress: "10.244.1.17", mac: "52:54:00:2a:1b:3c", name: "default" }],
    },
  };
}

export function secret(name: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: "shop", uid: `uid-${name}`, resourceVersion: "3", labels: { app: "shop" } },
    type: "Opaque",
    data: { password: "aHVudGVyMg==" },
    stringData: { token: "hunter2" },
  };
}

export function configMap(name: string, rv = "4"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "shop", uid: `uid-${name}`, resourceVersion: rv, labels: { app: "shop" } },
    data: { "application.yaml": "db:\n  password: hunter2\n" },
    binaryData: { keystore: "AAEC" },
  };
}

/** An Argo Rollout as the API server serves it (custom resources come out key-sorted). */
export function rollout(): KubeObject {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "Rollout",
    metadata: {
      annotations: {
        "argo-rollouts.argoproj.io/dashboard": "https://rollouts.example.com/shop/checkout",
        "kubectl.kubernetes.io/last-applied-configuration":
          '{"spec":{"env":[{"name":"DB_PASSWORD","value":"s3cr3t"}]}}',
        "prometheus.io/port": "8080",
        "prometheus.io/scrape": "true",
        "rollout.argoproj.io/revision": "7",
        "team.example.com/owner": "checkout",
      },
      creationTimestamp: "2026-05-02T09:12:44Z",
      generation: 7,
      labels: { app: "checkout" },
      managedFields: [{ manager: "kubectl-client-side-apply", operation: "Update", fieldsType: "FieldsV1" }],
      name: "checkout",
      namespace: "shop",
      resourceVersion: "48213",
      uid: "8d1c2f3a-6b0e-4f43-9c7d-2a1b0e9f4c11",
    },
    spec: {
      replicas: 5,
      revisionHistoryLimit: 3,
      selector: { matchLabels: { app: "checkout" } },
      strategy: {
        canary: {
          canaryService: "checkout-canary",
          stableService: "checkout-stable",
          steps: [{ setWeight: 20 }, { pause: { duration: "10m" } }, { setWeight: 50 }, { pause: {} }],
        },
      },
      template: {
        metadata: { labels: { app: "checkout" } },
        spec: {
          containers: [
            {
              env: [
                { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { key: "password", name: "checkout-db" } } },
                { name: "LOG_LEVEL", value: "debug" },
              ],
              image: "registry.example.com/checkout:2.14.0",
              name: "checkout",
            },
          ],
        },
      },
    },
    status: {
      availableReplicas: 5,
      conditions: [{ lastTransitionTime: "2026-05-02T09:20:01Z", status: "True", type: "Progressing" }],
      currentStepIndex: 1,
      observedGeneration: "7",
      phase: "Paused",
      readyReplicas: 5,
      replicas: 5,
      updatedReplicas: 1,
    },
  };
}
