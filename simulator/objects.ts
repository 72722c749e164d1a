/**
 * Realistic Pods and Nodes, modelled on the kind v1.36.2 captures in
 * tests/fixtures/k8s/real/ (field order, managedFields, status shape) and on what a
 * cloud node carries. They include what kubemeta must never pass on (managedFields,
 * the last-applied annotation, env values that look like secrets) so that slimming
 * is exercised on every object.
 */
import type { KubeObject } from "../sdk/model.ts";
import { kubeTime } from "./serialize.ts";
import { appContainer, appImage } from "./workloads.ts";

let podCounter = 0;
let nodeCounter = 0;

function hex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

/** "ip-10-0-1-23.eu-west-1.compute.internal" → "10.0.1.23"; other names get a stable 172.18.x.y. */
export function nodeIp(node: string): string {
  const match = /^ip-(\d+)-(\d+)-(\d+)-(\d+)\./.exec(node);
  if (match) return match.slice(1, 5).join(".");
  const hash = Number(Bun.hash(node) % 65_536n);
  return `172.18.${hash >> 8}.${hash & 255 || 1}`;
}

/** The name of the i-th node of a simulated EKS cluster. */
export function nodeName(index: number): string {
  return `ip-10-0-${Math.floor(index / 250)}-${(index % 250) + 1}.eu-west-1.compute.internal`;
}

function podIp(): string {
  const n = ++podCounter;
  return `10.${100 + ((n >> 16) & 127)}.${(n >> 8) & 255}.${n & 255}`;
}

export interface PodOptions {
  name: string;
  namespace: string;
  node?: string;
  owner?: { kind: string; name: string; uid: string };
  labels?: Record<string, string>;
}

const OWNER_API_VERSION: Record<string, string> = {
  ReplicaSet: "apps/v1",
  StatefulSet: "apps/v1",
  DaemonSet: "apps/v1",
  Job: "batch/v1",
  Node: "v1",
};

function podConditions(scheduled: boolean, time: string): object[] {
  if (!scheduled) {
    return [
      {
        type: "PodScheduled",
        status: "False",
        lastProbeTime: null,
        lastTransitionTime: time,
        reason: "Unschedulable",
        message:
          "0/3 nodes are available: 3 Insufficient cpu. " +
          "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
      },
    ];
  }
  return ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({
    type,
    observedGeneration: 1,
    status: "True",
    lastProbeTime: null,
    lastTransitionTime: time,
  }));
}

export function makePod(opts: PodOptions): KubeObject {
  const { name, namespace, node, owner } = opts;
  const app = opts.labels?.app ?? owner?.name.replace(/-[a-z0-9]{8,10}$/, "") ?? name;
  const labels = { app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": namespace, ...opts.labels };
  const image = appImage(namespace, app, `v2.14.${podCounter % 10}`);
  const time = kubeTime();
  const ip = podIp();
  const databaseUrl = { name: "DATABASE_URL", value: `postgres://${app}:hunter2@db.${namespace}:5432/${app}` };
  const lastApplied = JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { annotations: {}, labels, name, namespace },
    spec: { containers: [{ env: [databaseUrl], image, name: "app" }] },
  });
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      name,
      ...(owner ? { generateName: `${owner.name}-` } : {}),
      namespace,
      uid: crypto.randomUUID(),
      labels,
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": `${lastApplied}\n`,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
      },
      ...(owner
        ? {
            ownerReferences: [
              {
                apiVersion: OWNER_API_VERSION[owner.kind] ?? "apps/v1",
                kind: owner.kind,
                name: owner.name,
                uid: owner.uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:generateName": {},
              "f:labels": { ".": {}, "f:app": {} },
              "f:ownerReferences": { ".": {} },
            },
            "f:spec": {
              "f:containers": {
                'k:{"name":"app"}': {
                  ".": {},
                  "f:env": {},
                  "f:image": {},
                  "f:name": {},
                  "f:ports": {},
                  "f:resources": {},
                },
              },
              "f:dnsPolicy": {},
              "f:restartPolicy": {},
            },
          },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:status": {
              "f:conditions": {},
              "f:containerStatuses": {},
              "f:hostIP": {},
              "f:phase": {},
              "f:podIP": {},
              "f:startTime": {},
            },
          },
          subresource: "status",
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: "kube-api-access-x7k2p",
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        appContainer(image, {
          env: [
            databaseUrl,
            { name: "API_TOKEN", value: hex(16) },
            { name: "LOG_LEVEL", value: "info" },
            { name: "POD_IP", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "status.podIP" } } },
          ],
          volumeMounts: [
            {
              name: "kube-api-access-x7k2p",
              readOnly: true,
              mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            },
          ],
          readinessProbe: {
            httpGet: { path: "/ready", port: "http", scheme: "HTTP" },
            timeoutSeconds: 1,
            periodSeconds: 10,
            successThreshold: 1,
            failureThreshold: 3,
          },
        }),
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "default",
      serviceAccount: "default",
      ...(node ? { nodeName: node } : {}),
      securityContext: {},
      schedulerName: "default-scheduler",
      tolerations: [
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
        { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
    },
    status: node
      ? {
          observedGeneration: 1,
          phase: "Running",
          conditions: podConditions(true, time),
          hostIP: nodeIp(node),
          hostIPs: [{ ip: nodeIp(node) }],
          podIP: ip,
          podIPs: [{ ip }],
          startTime: time,
          containerStatuses: [
            {
              name: "app",
              state: { running: { startedAt: time } },
              lastState: {},
              ready: true,
              restartCount: 0,
              image,
              imageID:
                `${image.replace(/:[^:]+$/, "")}@sha256:` +
                `${Bun.hash(image).toString(16).padStart(16, "0").repeat(4)}`,
              containerID: `containerd://${hex(32)}`,
              started: true,
            },
          ],
          qosClass: "Burstable",
        }
      : { observedGeneration: 1, phase: "Pending", conditions: podConditions(false, time), qosClass: "Burstable" },
  };
}

export function makeNode(name: string): KubeObject {
  const index = nodeCounter++;
  const ip = nodeIp(name);
  const zone = `eu-west-1${"abc"[index % 3]}`;
  const time = kubeTime();
  const instanceId = `i-0${hex(8)}`;
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    lastHeartbeatTime: time,
    lastTransitionTime: time,
    reason,
    message,
  });
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: {
      name,
      labels: {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m6i.2xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": zone,
        "eks.amazonaws.com/nodegroup": "general-purpose",
      },
      annotations: {
        "alpha.kubernetes.io/provided-node-ip": ip,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
      },
      managedFields: [
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": { "f:annotations": { ".": {} }, "f:labels": { ".": {} } },
            "f:spec": { "f:providerID": {} },
          },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time,
          fieldsType: "FieldsV1",
          fieldsV1: { "f:status": { "f:conditions": {}, "f:images": {}, "f:nodeInfo": {} } },
          subresource: "status",
        },
      ],
    },
    spec: {
      podCIDR: `10.${100 + (index >> 8)}.${index & 255}.0/24`,
      podCIDRs: [`10.${100 + (index >> 8)}.${index & 255}.0/24`],
      providerID: `aws:///${zone}/${instanceId}`,
    },
    status: {
      capacity: {
        cpu: "8",
        "ephemeral-storage": "104845292Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        memory: "32329540Ki",
        pods: "110",
      },
      allocatable: {
        cpu: "7910m",
        "ephemeral-storage": "95551679124",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        memory: "31312708Ki",
        pods: "110",
      },
      conditions: [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
      ],
      addresses: [
        { type: "InternalIP", address: ip },
        { type: "InternalDNS", address: name },
        { type: "Hostname", address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: hex(16),
        systemUUID: `ec2${hex(14)}`,
        bootID: crypto.randomUUID(),
        kernelVersion: "6.1.119-129.201.amzn2023.x86_64",
        osImage: "Amazon Linux 2023.6.20241212",
        containerRuntimeVersion: "containerd://1.7.25",
        kubeletVersion: "v1.36.2-eks-1a2b3c4",
        kubeProxyVersion: "",
        operatingSystem: "linux",
        architecture: "amd64",
      },
      images: [
        {
          names: [
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni" +
              "@sha256:4a5d3bd4b2a0b8c0e1e5f5f0d3f6c7b8a9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2",
          ],
          sizeBytes: 48_921_338,
        },
        {
          names: [
            "registry.k8s.io/kube-proxy@sha256:0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c",
            "registry.k8s.io/kube-proxy:v1.36.2",
          ],
          sizeBytes: 30_412_774,
        },
        { names: ["registry.k8s.io/pause:3.10"], sizeBytes: 320_368 },
      ],
    },
  };
}
