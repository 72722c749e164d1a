/**
 * The config's `slim` section as `resolveConfig` checks it, and slim rules through a real host (a custom kind on its
 * node's stream, Secrets and ConfigMaps only when named). The rules themselves are in slim-rules.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { startTestHost, type TestHost } from "../testing/index.ts";
import { configMap, NODE, secret, vmi } from "./slim-fixtures.ts";

async function configIssues(slimSection: unknown, rest: Record<string, unknown> = {}): Promise<string[]> {
  try {
    await resolveConfig({ ...rest, slim: slimSection }, { baseDir: "/", registry: builtins });
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
}

describe("slim config", () => {
  test("the section becomes the core's options; without it, no rules", async () => {
    const config = await resolveConfig(
      {
        slim: {
          annotations: ["team.example.com/*", "prometheus.io/scrape"],
          kinds: {
            Pod: { keep: ["spec.serviceAccountName"] },
            Rollout: {
              keep: ["spec.replicas", "status.phase", "spec.strategy.canary.steps"],
              annotations: ["argo-rollouts.argoproj.io/*"],
              node: "spec.nodeName",
            },
            Secret: {},
          },
        },
      },
      { baseDir: "/", registry: builtins },
    );
    expect(config.slim).toEqual({
      annotationAllowList: ["team.example.com/*", "prometheus.io/scrape"],
      kinds: {
        Pod: { keep: ["spec.serviceAccountName"], annotations: [] },
        Rollout: {
          keep: ["spec.replicas", "status.phase", "spec.strategy.canary.steps"],
          annotations: ["argo-rollouts.argoproj.io/*"],
          node: "spec.nodeName",
        },
        Secret: { keep: [], annotations: [] },
      },
    });
    expect((await resolveConfig({}, { baseDir: "/", registry: builtins })).slim).toEqual({
      annotationAllowList: [],
      kinds: {},
    });
  });

  test("bad paths, kinds and keys: every error with its path", async () => {
    expect(
      await configIssues({
        kinds: {
          Rollout: {
            keep: ["spec..replicas", "", "spec.steps[0]", "metadata.managedFields", "spec.replicas", "__proto__.x"],
            node: "status.",
          },
        },
      }),
    ).toEqual([
      expect.stringMatching(/^slim\.kinds\.Rollout\.keep\[0\]: "spec\.\.replicas" is not a dot path of simple keys/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.keep\[1\]: "" is not a dot path/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.keep\[2\]: "spec\.steps\[0\]" is not a dot path/),
      expect.stringMatching(
        /^slim\.kinds\.Rollout\.keep\[3\]: "metadata\.managedFields": kind, apiVersion and metadata/,
      ),
      expect.stringMatching(/^slim\.kinds\.Rollout\.keep\[5\]: "__proto__\.x" is not a dot path/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.node: "status\." is not a dot path/),
    ]);
    expect(
      await configIssues({
        kinds: {
          Secret: { keep: ["data", "type", "stringData.token"], annotations: ["example.com/"] },
          ConfigMap: { keep: ["binaryData"] },
          Pod: { node: "spec.nodeName" },
        },
      }),
    ).toEqual([
      'slim.kinds.Secret.keep[0]: "data": a Secret\'s data is never published',
      'slim.kinds.Secret.keep[2]: "stringData.token": a Secret\'s stringData is never published',
      "slim.kinds.Secret.annotations: a Secret keeps no annotations: tools keep credentials there too",
      'slim.kinds.ConfigMap.keep[0]: "binaryData": a ConfigMap\'s binaryData is never published',
      "slim.kinds.Pod.node: Pod is routed by its own node (a Pod's spec.nodeName, a Node's name)",
    ]);
    expect(
      await configIssues({ annotations: [""], kinds: { pods: {}, Rollout: { keeep: [] }, Secret: null } }),
    ).toEqual([
      expect.stringMatching(/^slim\.annotations\[0\]: must be an annotation key/),
      expect.stringMatching(/^slim\.kinds\.pods: must be an API kind such as Pod or Rollout/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.keeep: /),
      expect.stringMatching(/^slim\.kinds\.Secret: /),
    ]);
    expect(await configIssues({ kind: {} })).toEqual([expect.stringMatching(/^slim\.kind: /)]);
    // An error elsewhere in the config hides none of these.
    expect(await configIssues({ kinds: { Pod: { node: "spec.nodeName" } } }, { http: { port: 99999 } })).toEqual([
      expect.stringMatching(/^http\.port: /),
      "slim.kinds.Pod.node: Pod is routed by its own node (a Pod's spec.nodeName, a Node's name)",
    ]);
  });

  test("a built-in kind in another case is refused, naming its own; a custom resource's kind is taken", async () => {
    // A rule goes by the envelope's kind, case and all: `HttpRoute` kept nothing of any HTTPRoute, and said nothing.
    const kinds = { HttpRoute: {}, pod: {}, CONFIGMAP: {}, HTTPRoute: {}, Rollout: {}, VirtualMachineInstance: {} };
    expect(await configIssues({ kinds })).toEqual([
      "slim.kinds.HttpRoute: must be written HTTPRoute: a kind is case-sensitive",
      "slim.kinds.pod: must be written Pod: a kind is case-sensitive",
      "slim.kinds.CONFIGMAP: must be written ConfigMap: a kind is case-sensitive",
    ]);
  });

  test("rules naming what is never published are refused with their paths; what merely holds it is not", async () => {
    const lastApplied = "kubectl.kubernetes.io/last-applied-configuration";
    expect(
      await configIssues({
        annotations: ["kubectl.kubernetes.io/", lastApplied, "*"],
        kinds: {
          Rollout: {
            keep: [
              "spec.managedFields",
              "spec.template.spec.containers.env.value",
              "spec.template.spec.containers",
              "status.managedFields.manager",
              "spec.env.valueFrom.secretKeyRef",
              "spec.template.spec.containers.env.name",
              "spec.value",
            ],
            annotations: [`${lastApplied}*`, "kubectl.kubernetes.io/last-applied-*"],
          },
          Pod: { keep: ["spec.initContainers.env", "spec.containers.image"] },
          VirtualMachineInstance: { node: "status.managedFields" },
        },
      }),
    ).toEqual([
      `slim.annotations[1]: "${lastApplied}" is never published: it holds the whole applied manifest, ` +
        "Secret data and env values too",
      'slim.kinds.Rollout.keep[0]: "spec.managedFields": managedFields is never published',
      'slim.kinds.Rollout.keep[1]: "spec.template.spec.containers.env.value": the value of an env entry is never ' +
        "published",
      'slim.kinds.Rollout.keep[3]: "status.managedFields.manager": managedFields is never published',
      'slim.kinds.Rollout.keep[4]: "spec.env.valueFrom.secretKeyRef": the valueFrom of an env entry is never ' +
        "published",
      `slim.kinds.Rollout.annotations[0]: "${lastApplied}*" is never published: it holds the whole applied ` +
        "manifest, Secret data and env values too",
      'slim.kinds.VirtualMachineInstance.node: "status.managedFields": managedFields is never published',
    ]);
  });

  test("an annotation entry no key can match is refused with its path; every key and prefix form is not", async () => {
    expect(
      await configIssues({
        annotations: ["*/scrape", "prometheus.io/scrape", "team.example.com/", "team.example.com/*", "app*", "*"],
        kinds: {
          Rollout: { annotations: ["argo-rollouts.argoproj.io/*", "a*b", " x", "example.com/x-", "a/b/c", "x**"] },
        },
      }),
    ).toEqual([
      expect.stringMatching(/^slim\.annotations\[0\]: "\*\/scrape" matches no annotation key: /),
      expect.stringMatching(/^slim\.kinds\.Rollout\.annotations\[1\]: "a\*b" matches no annotation key/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.annotations\[2\]: " x" matches no annotation key/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.annotations\[3\]: "example\.com\/x-" matches no annotation key/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.annotations\[4\]: "a\/b\/c" matches no annotation key/),
      expect.stringMatching(/^slim\.kinds\.Rollout\.annotations\[5\]: "x\*\*" matches no annotation key/),
    ]);
  });
});

describe("slim rules through a real host", () => {
  const logged: string[] = [];
  let th: TestHost;
  beforeAll(async () => {
    th = await startTestHost({
      sinks: [{ type: "sse" }],
      logger: createLogger({ write: (line) => void logged.push(line) }),
      extra: {
        slim: {
          annotations: ["team.example.com/*"],
          kinds: {
            VirtualMachineInstance: { keep: ["status.phase"], node: "status.nodeName" },
            ConfigMap: {},
          },
        },
      },
    });
  });
  afterAll(() => th.destroy());

  async function page(stream: string): Promise<Envelope[]> {
    const response = await fetch(`${th.url}/v1/updates?stream=${stream}`);
    expect(response.status).toBe(200);
    return ((await response.json()) as { items: Envelope[] }).items;
  }

  test("a custom kind with a node rule lands on node/<name>; Secrets dropped, a named ConfigMap slimmed", async () => {
    await th.changes.apply("virtualmachineinstances", "ADDED", vmi("db-0", NODE));
    await th.changes.apply("virtualmachineinstances", "ADDED", vmi("db-1"));
    await th.changes.apply("secrets", "ADDED", secret("db"));
    await th.changes.apply("secrets", "ADDED", secret("api"));
    await th.changes.apply("configmaps", "ADDED", configMap("app"));
    await th.changes.flush();

    const onNode = await page(`node/${NODE}`);
    expect(onNode).toHaveLength(1);
    expect(onNode[0]).toMatchObject({
      stream: `node/${NODE}`,
      type: "ADDED",
      kind: "VirtualMachineInstance",
      name: "db-0",
      node: NODE,
      object: {
        kind: "VirtualMachineInstance",
        apiVersion: "kubevirt.io/v1",
        status: { phase: "Running", nodeName: NODE },
      },
    });
    expect(onNode[0]!.object.spec).toBeUndefined();

    expect((await page("all")).map((u) => [u.kind, u.name, u.node])).toEqual([
      ["VirtualMachineInstance", "db-0", NODE],
      ["VirtualMachineInstance", "db-1", null],
      ["ConfigMap", "app", null],
    ]);
    const [shared] = await page("shared");
    expect(shared!.object).toEqual({
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "app", namespace: "shop", uid: "uid-app", labels: { app: "shop" } },
    });
    expect(th.host.metrics.render()).toContain('kubemeta_changes_rejected_total{reason="kind_not_allowed"} 2');
    expect(logged.filter((line) => line.includes('"kind":"Secret"'))).toHaveLength(1);

    // Once scheduled, the pending one moves to its node's stream.
    await th.changes.apply("virtualmachineinstances", "MODIFIED", vmi("db-1", "worker-2"));
    await th.changes.flush();
    expect((await page("node/worker-2")).map((u) => [u.type, u.name])).toEqual([["MODIFIED", "db-1"]]);
  });

  test("when a rule stops naming ConfigMaps, the next change of one retracts it", async () => {
    await th.stop();
    const restarted = await startTestHost({ dir: th.dir });
    try {
      await restarted.changes.apply("configmaps", "MODIFIED", configMap("app", "5"));
      await restarted.changes.flush();
      const response = await fetch(`${restarted.url}/v1/updates?stream=shared`);
      const { items } = (await response.json()) as { items: Envelope[] };
      expect(items.map((u) => [u.type, u.kind, u.name])).toEqual([
        ["ADDED", "ConfigMap", "app"],
        ["DELETED", "ConfigMap", "app"],
      ]);
      const objects = (await (await fetch(`${restarted.url}/v1/objects?kind=ConfigMap`)).json()) as { items: [] };
      expect(objects.items).toEqual([]);
    } finally {
      await restarted.stop();
    }
  });
});
