/**
 * Realistic Pods and Nodes, modelled on the kind v1.36.2 captures in
 * tests/fixtures/k8s/real/ (field order, managedFields, status shape) and on what a
 * cloud node carries. They include what kubemeta must never pass on (managedFields,
 * the last-applied annotation, env values that look like secrets) so that slimming
 * is exercised on every object.
 */
import type { KubeObject } from "../sdk/model.ts";
import { fieldsOf, managedEntry } from "./managed-fields.ts";
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

/** The service-account token volume admission adds to every pod (not in its creator's managedFields). */
const API_ACCESS = "kube-api-access-x7k2p";
const RESOURCES = { limits: { memory: "512Mi" }, requests: { cpu: "250m", memory: "256Mi" } };

function podSpec(app: string, image: string, env: object[], node: string | undefined) {
  const configVolume = { name: "config", configMap: { name: `${app}-config`, defaultMode: 420 } };
  const apiAccess = {
    name: API_ACCESS,
    projected: {
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
        { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
        {
          downwardAPI: {
            items: [{ path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } }],
          },
        },
      ],
      defaultMode: 420,
    },
  };
  const mounts = [
    { name: "config", readOnly: true, mountPath: `/etc/${app}` },
    { name: API_ACCESS, readOnly: true, mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" },
  ];
  const container = appContainer(image, {
    env,
    volumeMounts: mounts,
    readinessProbe: {
      httpGet: { path: "/ready", port: "http", scheme: "HTTP" },
      timeoutSeconds: 1,
      periodSeconds: 10,
      successThreshold: 1,
      failureThreshold: 3,
    },
  });
  const spec = {
    volumes: [configVolume, apiAccess],
    containers: [container],
    restartPolicy: "Always",
    terminationGracePeriodSeconds: 30,
    dnsPolicy: "ClusterFirst",
    nodeSelector: { "kubernetes.io/os": "linux" },
    serviceAccountName: "default",
    serviceAccount: "default",
    ...(node ? { nodeName: node } : {}),
    securityContext: { runAsUser: 10001, runAsGroup: 10001, runAsNonRoot: true, fsGroup: 10001 },
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              labelSelector: { matchExpressions: [{ key: "app", operator: "In", values: [app] }] },
              topologyKey: "kubernetes.io/hostname",
            },
          },
        ],
      },
    },
    schedulerName: "default-scheduler",
    tolerations: [
      { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
      { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
    ],
    priority: 0,
    enableServiceLinks: true,
    preemptionPolicy: "PreemptLowerPriority",
  };
  // What the creator sent: admission adds the token volume and its mount, the priority fields; the scheduler, nodeName.
  const { nodeName: _node, priority: _priority, preemptionPolicy: _preemption, ...sent } = spec;
  const template = {
    ...sent,
    volumes: [configVolume],
    containers: [{ ...container, volumeMounts: mounts.slice(0, 1) }],
  };
  return { spec, template, mounts };
}

function runningStatus(node: string, ip: string, image: string, time: string, mounts: object[]) {
  return {
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
          `${image.replace(/:[^:]+$/, "")}@sha256:` + `${Bun.hash(image).toString(16).padStart(16, "0").repeat(4)}`,
        containerID: `containerd://${hex(32)}`,
        started: true,
        allocatedResources: RESOURCES.requests,
        resources: RESOURCES,
        volumeMounts: mounts.map((mount) => ({ ...mount, recursiveReadOnly: "Disabled" })),
        user: { linux: { uid: 10001, gid: 10001, supplementalGroups: [10001] } },
      },
    ],
    qosClass: "Burstable",
    allocatedResources: RESOURCES.requests,
    resources: RESOURCES,
  };
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
  const env = [
    databaseUrl,
    { name: "API_TOKEN", value: hex(16) },
    { name: "LOG_LEVEL", value: "info" },
    { name: "POD_IP", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "status.podIP" } } },
  ];
  const { spec, template, mounts } = podSpec(app, image, env, node);
  const metadata = {
    ...(owner ? { generateName: `${owner.name}-` } : {}),
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
  };
  const status = node
    ? runningStatus(node, ip, image, time, mounts)
    : { observedGeneration: 1, phase: "Pending", conditions: podConditions(false, time), qosClass: "Burstable" };
  // Set at creation by the API server's defaulting: owned by no manager (as in the kind captures).
  const unowned = new Set(["qosClass"]);
  const managedFields = [
    managedEntry(owner ? "kube-controller-manager" : "kubectl-client-side-apply", time, {
      "f:metadata": fieldsOf(metadata),
      "f:spec": fieldsOf(template),
    }),
    node
      ? managedEntry("kubelet", time, { "f:status": fieldsOf(status, unowned) }, true)
      : managedEntry("kube-scheduler", time, { "f:status": fieldsOf(status, new Set(["phase", "qosClass"])) }, true),
  ];
  const { generateName, ...rest } = metadata as typeof metadata & { generateName?: string };
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      name,
      ...(generateName ? { generateName } : {}),
      namespace,
      uid: crypto.randomUUID(),
      ...rest,
      managedFields,
    },
    spec,
    status,
  };
}

/** Images a node of a typical EKS cluster holds: its DaemonSets' and the sandbox's, [repository, tag, bytes]. */
const NODE_IMAGES: Array<[string, string, number]> = [
  ["602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni", "v1.19.2", 48_921_338],
  ["602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni-init", "v1.19.2", 62_104_216],
  ["602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/aws-ebs-csi-driver", "v1.38.1", 85_330_602],
  ["602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/csi-node-driver-registrar", "v2.12.0", 9_541_123],
  ["602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/livenessprobe", "v2.14.0", 8_881_017],
  ["quay.io/prometheus/node-exporter", "v1.8.2", 12_211_309],
  ["public.ecr.aws/aws-observability/aws-for-fluent-bit", "2.32.4", 104_712_885],
  ["registry.k8s.io/kube-proxy", "v1.36.2", 30_412_774],
];

function nodeImages(): object[] {
  const digest = (text: string) => Bun.hash(text).toString(16).padStart(16, "0").repeat(4);
  return [
    ...NODE_IMAGES.map(([repository, tag, sizeBytes]) => ({
      names: [`${repository}@sha256:${digest(repository + tag)}`, `${repository}:${tag}`],
      sizeBytes,
    })),
    { names: ["registry.k8s.io/pause:3.10"], sizeBytes: 320_368 },
  ];
}

export function makeNode(name: string): KubeObject {
  const index = nodeCounter++;
  const ip = nodeIp(name);
  const zone = `eu-west-1${"abc"[index % 3]}`;
  const time = kubeTime();
  const instanceId = `i-0${hex(8)}`;
  const cidr = `10.${100 + (index >> 8)}.${index & 255}.0/24`;
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    lastHeartbeatTime: time,
    lastTransitionTime: time,
    reason,
    message,
  });
  const labels = {
    "beta.kubernetes.io/arch": "amd64",
    "beta.kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "kubernetes.io/hostname": name,
    "kubernetes.io/os": "linux",
    "node.kubernetes.io/instance-type": "m6i.2xlarge",
    "topology.kubernetes.io/region": "eu-west-1",
    "topology.kubernetes.io/zone": zone,
    "eks.amazonaws.com/nodegroup": "general-purpose",
  };
  const kubeletAnnotations = {
    "alpha.kubernetes.io/provided-node-ip": ip,
    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
  };
  const status = {
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
    images: nodeImages(),
  };
  const spec = { podCIDR: cidr, podCIDRs: [cidr], providerID: `aws:///${zone}/${instanceId}` };
  // Who writes what on a real node: the kubelet registers it, the node-ipam and TTL controllers of
  // kube-controller-manager add the pod CIDR and the TTL annotation, the kubelet then posts its status.
  const managedFields = [
    managedEntry("kubelet", time, {
      "f:metadata": fieldsOf({ annotations: kubeletAnnotations, labels }),
      "f:spec": fieldsOf({ providerID: spec.providerID }),
    }),
    managedEntry("kube-controller-manager", time, {
      "f:metadata": fieldsOf({ annotations: { "node.alpha.kubernetes.io/ttl": "0" } }),
      "f:spec": fieldsOf({ podCIDR: cidr, podCIDRs: spec.podCIDRs }),
    }),
    managedEntry("kubelet", time, { "f:status": fieldsOf(status) }, true),
  ];
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: {
      name,
      labels,
      annotations: { ...kubeletAnnotations, "node.alpha.kubernetes.io/ttl": "0" },
      managedFields,
    },
    spec,
    status,
  };
}
