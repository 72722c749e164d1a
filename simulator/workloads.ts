/**
 * The context of a simulated cluster's pods: Namespaces and workload owners, shaped like the kind v1.36.2 captures
 * (DeploymentList, Job) and the canonical API fixtures for field order. Services and EndpointSlices: networking.ts.
 */
import type { KubeObject } from "../sdk/model.ts";
import { kubeTime } from "./serialize.ts";
import { metadata, type Owner } from "./object-meta.ts";

export interface ContainerExtras {
  env?: object[];
  volumeMounts?: object[];
  readinessProbe?: object;
}

/** The application container of every simulated workload, fields in the Go struct's order. */
export function appContainer(image: string, extras: ContainerExtras = {}): Record<string, unknown> {
  return {
    name: "app",
    image,
    ports: [
      { name: "http", containerPort: 8080, protocol: "TCP" },
      { name: "metrics", containerPort: 9090, protocol: "TCP" },
    ],
    ...(extras.env ? { env: extras.env } : {}),
    resources: { limits: { memory: "512Mi" }, requests: { cpu: "250m", memory: "256Mi" } },
    ...(extras.volumeMounts ? { volumeMounts: extras.volumeMounts } : {}),
    ...(extras.readinessProbe ? { readinessProbe: extras.readinessProbe } : {}),
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
    imagePullPolicy: "IfNotPresent",
  };
}

export function appImage(namespace: string, app: string, version = "v2.14.0"): string {
  return `123456789012.dkr.ecr.eu-west-1.amazonaws.com/${namespace}/${app}:${version}`;
}

function podTemplate(app: string, namespace: string, extraLabels: Record<string, string> = {}) {
  return {
    metadata: { labels: { app, ...extraLabels } },
    spec: {
      containers: [appContainer(appImage(namespace, app))],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      securityContext: {},
      schedulerName: "default-scheduler",
    },
  };
}

export function makeNamespace(name: string): KubeObject {
  return {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: { name, uid: crypto.randomUUID(), labels: { "kubernetes.io/metadata.name": name } },
    spec: { finalizers: ["kubernetes"] },
    status: { phase: "Active" },
  };
}

export function makeDeployment(name: string, namespace: string, replicas: number): KubeObject {
  const lastApplied = JSON.stringify({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace },
    spec: { replicas },
  });
  return {
    kind: "Deployment",
    apiVersion: "apps/v1",
    metadata: {
      ...metadata(name, namespace, { app: name }),
      annotations: {
        "deployment.kubernetes.io/revision": "1",
        "kubectl.kubernetes.io/last-applied-configuration": `${lastApplied}\n`,
      },
    },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: podTemplate(name, namespace),
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    },
    status: {
      observedGeneration: 1,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
        {
          type: "Available",
          status: "True",
          lastUpdateTime: kubeTime(),
          lastTransitionTime: kubeTime(),
          reason: "MinimumReplicasAvailable",
          message: "Deployment has minimum availability.",
        },
        {
          type: "Progressing",
          status: "True",
          lastUpdateTime: kubeTime(),
          lastTransitionTime: kubeTime(),
          reason: "NewReplicaSetAvailable",
          message: `ReplicaSet "${name}" has successfully progressed.`,
        },
      ],
    },
  };
}

export function makeReplicaSet(
  name: string,
  namespace: string,
  replicas: number,
  owner: Owner,
  hash: string,
): KubeObject {
  const app = owner.name;
  return {
    kind: "ReplicaSet",
    apiVersion: "apps/v1",
    metadata: {
      ...metadata(name, namespace, { app, "pod-template-hash": hash }, owner),
      annotations: {
        "deployment.kubernetes.io/desired-replicas": String(replicas),
        "deployment.kubernetes.io/max-replicas": String(replicas + 1),
        "deployment.kubernetes.io/revision": "1",
      },
    },
    spec: {
      replicas,
      selector: { matchLabels: { app, "pod-template-hash": hash } },
      template: podTemplate(app, namespace, { "pod-template-hash": hash }),
    },
    status: {
      replicas,
      fullyLabeledReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      observedGeneration: 1,
    },
  };
}

export function makeStatefulSet(name: string, namespace: string, replicas: number): KubeObject {
  return {
    kind: "StatefulSet",
    apiVersion: "apps/v1",
    metadata: metadata(name, namespace, { app: name }),
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: podTemplate(name, namespace),
      serviceName: name,
      podManagementPolicy: "OrderedReady",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } },
      revisionHistoryLimit: 10,
    },
    status: {
      observedGeneration: 1,
      replicas,
      readyReplicas: replicas,
      currentReplicas: replicas,
      updatedReplicas: replicas,
      currentRevision: `${name}-7d4b9c8f6`,
      updateRevision: `${name}-7d4b9c8f6`,
      collisionCount: 0,
      availableReplicas: replicas,
    },
  };
}

export function makeDaemonSet(name: string, namespace: string, nodes: number): KubeObject {
  return {
    kind: "DaemonSet",
    apiVersion: "apps/v1",
    metadata: {
      ...metadata(name, namespace, { "k8s-app": name }),
      annotations: { "deprecated.daemonset.template.generation": "1" },
    },
    spec: {
      selector: { matchLabels: { "k8s-app": name } },
      template: podTemplate(name, namespace, { "k8s-app": name }),
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
      revisionHistoryLimit: 10,
    },
    status: {
      currentNumberScheduled: nodes,
      numberMisscheduled: 0,
      desiredNumberScheduled: nodes,
      numberReady: nodes,
      observedGeneration: 1,
      updatedNumberScheduled: nodes,
      numberAvailable: nodes,
    },
  };
}

export function makeCronJob(name: string, namespace: string): KubeObject {
  return {
    kind: "CronJob",
    apiVersion: "batch/v1",
    metadata: metadata(name, namespace, { app: name }),
    spec: {
      schedule: "*/15 * * * *",
      concurrencyPolicy: "Forbid",
      suspend: false,
      jobTemplate: {
        metadata: {},
        spec: {
          backoffLimit: 2,
          template: {
            ...podTemplate(name, namespace),
            spec: { ...podTemplate(name, namespace).spec, restartPolicy: "OnFailure" },
          },
        },
      },
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 1,
    },
    status: { lastScheduleTime: kubeTime(), lastSuccessfulTime: kubeTime() },
  };
}

export function makeJob(name: string, namespace: string, owner: Owner): KubeObject {
  const template = podTemplate(owner.name, namespace);
  return {
    kind: "Job",
    apiVersion: "batch/v1",
    metadata: metadata(name, namespace, { "batch.kubernetes.io/job-name": name, "job-name": name }, owner, "batch/v1"),
    spec: {
      parallelism: 1,
      completions: 1,
      backoffLimit: 2,
      manualSelector: false,
      template: { ...template, spec: { ...template.spec, restartPolicy: "OnFailure" } },
      completionMode: "NonIndexed",
      suspend: false,
      podReplacementPolicy: "TerminatingOrFailed",
    },
    status: {
      conditions: [
        {
          type: "SuccessCriteriaMet",
          status: "True",
          lastProbeTime: kubeTime(),
          lastTransitionTime: kubeTime(),
          reason: "CompletionsReached",
          message: "Reached expected number of succeeded pods",
        },
        {
          type: "Complete",
          status: "True",
          lastProbeTime: kubeTime(),
          lastTransitionTime: kubeTime(),
          reason: "CompletionsReached",
          message: "Reached expected number of succeeded pods",
        },
      ],
      startTime: kubeTime(),
      completionTime: kubeTime(),
      succeeded: 1,
      terminating: 0,
      uncountedTerminatedPods: {},
      ready: 0,
    },
  };
}
