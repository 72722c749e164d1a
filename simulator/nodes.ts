/**
 * Realistic Nodes, as a cloud node of a typical EKS cluster carries them (labels, images,
 * addresses, the status the kubelet posts), with the managedFields of those who write them.
 */
import type { KubeObject } from "../sdk/model.ts";
import { fieldsOf, managedEntry } from "./managed-fields.ts";
import { kubeTime } from "./serialize.ts";

let nodeCounter = 0;

/** `bytes` random bytes in hex: machine and container ids. */
export function randomHex(bytes: number): string {
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
  const instanceId = `i-0${randomHex(8)}`;
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
      machineID: randomHex(16),
      systemUUID: `ec2${randomHex(14)}`,
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
