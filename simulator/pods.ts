/**
 * Realistic Pods, modelled on the kind v1.36.2 captures in tests/fixtures/k8s/real/ (field
 * order, managedFields, status shape). They include what kubemeta must never pass on
 * (managedFields, the last-applied annotation, env values that look like secrets) so that
 * slimming is exercised on every object. Their nodes are in nodes.ts.
 */
import type { KubeObject } from "../sdk/model.ts";
import { fieldsOf, managedEntry } from "./managed-fields.ts";
import { kubeTime } from "./serialize.ts";
import { appContainer, appImage } from "./workloads.ts";
import { nodeIp, randomHex } from "./nodes.ts";

let podCounter = 0;

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
        containerID: `containerd://${randomHex(32)}`,
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
    { name: "API_TOKEN", value: randomHex(16) },
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
