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
