/**
 * What the slim rules never publish, whatever they say: managedFields, metadata beyond the fixed fields,
 * last-applied-configuration, env values, Secret and ConfigMap payloads; and Secrets and ConfigMaps only when a rule
 * names their kind. The rules themselves are in slim-rules.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { slim } from "../core/slim.ts";
import { isPublished, type SlimOptions } from "../core/slim/rules.ts";
import type { SlimObject } from "../protocol/envelope.ts";
import { fixture, listItems } from "./fixtures/k8s/load.ts";
import { configMap, rollout, secret } from "./slim-fixtures.ts";

describe("slim rules: never published, whatever the rules say", () => {
  test("managedFields, metadata beyond the fixed fields, last-applied-configuration", () => {
    const raw = rollout();
    (raw.spec as Record<string, unknown>).template = {
      metadata: {
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}", "example.com/a": "b" },
        managedFields: [{ manager: "x" }],
      },
    };
    const options: SlimOptions = {
      kinds: {
        Rollout: {
          keep: ["metadata", "metadata.managedFields", "metadata.annotations", "metadata.generation", "spec.template"],
        },
      },
    };
    const slimObject = slim("Rollout", raw, options);
    const json = JSON.stringify(slimObject);
    for (const forbidden of ["managedFields", "last-applied-configuration", "s3cr3t", '"generation"'])
      expect(json).not.toContain(forbidden);
    expect(slimObject.metadata).toEqual(slim("Rollout", raw).metadata as SlimObject);
    expect(slimObject.spec).toEqual({ template: { metadata: { annotations: { "example.com/a": "b" } } } });
  });

  test("env values, wherever containers sit in a kept subtree", async () => {
    const kindnet = (await listItems("real/kind-v1.36.2/core.v1.PodList.json")).find((pod) =>
      pod.metadata?.name?.startsWith("kindnet"),
    )!;
    const pod = slim("Pod", kindnet, { kinds: { Pod: { keep: ["spec.containers", "spec.initContainers"] } } });
    const containers = (pod.spec as { containers: { name: string; env: unknown }[] }).containers;
    expect(containers[0]!.env).toEqual([
      { name: "HOST_IP" },
      { name: "POD_IP" },
      { name: "POD_SUBNET" },
      { name: "CONTROL_PLANE_ENDPOINT" },
    ]);
    for (const leaked of ["v1.36-control-plane:6443", "10.244.0.0/16", "fieldRef"])
      expect(JSON.stringify(pod)).not.toContain(leaked);

    // A pod template of a workload, and a custom kind's own `env` list kept directly.
    const rolloutSlim = slim("Rollout", rollout(), { kinds: { Rollout: { keep: ["spec.template"] } } });
    expect(JSON.stringify(rolloutSlim)).not.toMatch(/debug|checkout-db|secretKeyRef/);
    const direct = { ...rollout(), spec: { env: [{ name: "A", value: "1" }] } };
    expect(slim("Rollout", direct, { kinds: { Rollout: { keep: ["spec.env"] } } }).spec).toEqual({
      env: [{ name: "A" }],
    });
    const deployment = await fixture("apps.v1.Deployment.json");
    const kept = slim("Deployment", deployment, { kinds: { Deployment: { keep: ["spec.template"] } } });
    const template = JSON.stringify((kept.spec as { template: unknown }).template);
    expect(template).toContain('"env":[{"name":"nameValue"}]');
    expect(template).not.toContain("secretKeyRef");
  });

  test("paths that name managedFields or an env entry's value keep nothing, through lists too", () => {
    const raw = rollout();
    (raw.spec as Record<string, unknown>).managedFields = [{ manager: "x", fieldsV1: {} }];
    const keep = [
      "spec.managedFields",
      "spec.managedFields.manager",
      "spec.template.spec.containers.env.value",
      "spec.template.spec.containers.env.valueFrom",
      "spec.template.spec.containers.env.valueFrom.secretKeyRef",
    ];
    expect(slim("Rollout", raw, { kinds: { Rollout: { keep } } }).spec).toBeUndefined();
  });

  test("Secret and ConfigMap payloads, even when a rule names them", async () => {
    const options: SlimOptions = {
      kinds: { Secret: { keep: ["data", "stringData", "type"] }, ConfigMap: { keep: ["data", "binaryData.keystore"] } },
    };
    expect(slim("Secret", secret("db"), options)).toEqual({
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name: "db", namespace: "shop", uid: "uid-db", labels: { app: "shop" } },
      type: "Opaque",
    });
    expect(slim("ConfigMap", configMap("app"), options)).toEqual({
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "app", namespace: "shop", uid: "uid-app", labels: { app: "shop" } },
    });
    const canonical = await fixture("core.v1.Secret.json");
    expect(JSON.stringify(slim("Secret", canonical, options))).not.toMatch(/Ag==|stringDataValue|annotationsValue/);
  });

  test("Secrets and ConfigMaps are published only when a rule names their kind", () => {
    for (const kind of ["Secret", "ConfigMap"]) {
      expect(isPublished(kind, undefined)).toBe(false);
      expect(isPublished(kind, { annotationAllowList: ["*"], kinds: { Rollout: {} } })).toBe(false);
      expect(isPublished(kind, { kinds: { [kind]: {} } })).toBe(true);
    }
    expect(isPublished("Rollout", undefined)).toBe(true);
    expect(isPublished("Pod", { kinds: {} })).toBe(true);
  });
});
