/**
 * A simulated cluster's Services and EndpointSlices, shaped like the canonical API fixtures for field order.
 */
import type { KubeObject } from "../sdk/model.ts";
import { metadata, type Owner } from "./object-meta.ts";

export function makeService(name: string, namespace: string, clusterIP: string): KubeObject {
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: metadata(name, namespace, { app: name }),
    spec: {
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http" }],
      selector: { app: name },
      clusterIP,
      clusterIPs: [clusterIP],
      type: "ClusterIP",
      sessionAffinity: "None",
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      internalTrafficPolicy: "Cluster",
    },
    status: { loadBalancer: {} },
  };
}

export interface Endpoint {
  ip: string;
  node: string;
  pod: { name: string; uid: string };
}

export function makeEndpointSlice(service: Owner, namespace: string, endpoints: Endpoint[]): KubeObject {
  return {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    metadata: {
      ...metadata(
        `${service.name}-${Bun.hash(service.uid).toString(36).slice(0, 5)}`,
        namespace,
        {
          "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
          "kubernetes.io/service-name": service.name,
        },
        service,
        "v1",
      ),
      generateName: `${service.name}-`,
    },
    addressType: "IPv4",
    endpoints: endpoints.map(({ ip, node, pod }) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: "Pod", namespace, name: pod.name, uid: pod.uid },
      nodeName: node,
      zone: "eu-west-1a",
    })),
    ports: [{ name: "http", protocol: "TCP", port: 8080 }],
  };
}
