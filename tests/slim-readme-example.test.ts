/**
 * README's "Slim rules" example, used as a reader would: its `sources` and `slim` in a real kubemeta process against
 * the test API server serving ConfigMaps, Argo Rollouts and KubeVirt VirtualMachineInstances. Each kind its rules name
 * is published as the rules say; a rule alone watches nothing, so the example must list the resources too.
 */
import { afterEach, expect, test } from "bun:test";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "../testing/index.ts";
import { cleanups, kubernetesSource, runCleanups, setup } from "./faults-cluster.ts";

afterEach(runCleanups);

interface Example {
  sources?: { type: string; resources?: string[] }[];
  slim: unknown;
}

/** The first YAML block under README's "### Slim rules". */
async function readmeExample(): Promise<Example> {
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const section = readme.slice(readme.indexOf("### Slim rules"));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  return Bun.YAML.parse(yaml) as Example;
}

interface Item {
  kind: string;
  name: string;
  stream: string | null;
  object: Record<string, unknown>;
}

const NODE = "worker-1.eu-west-1.compute.internal";
const ANNOTATIONS = {
  "argo-rollouts.argoproj.io/revision": "4",
  "team.example.com/owner": "payments",
  "prometheus.io/scrape": "true",
  "example.com/other": "dropped",
};

test("its sources and rules publish each kind they name: ConfigMap sans data, Rollout, VMI on its node", async () => {
  const example = await readmeExample();
  const resources = example.sources?.find((source) => source.type === "kubernetes")?.resources;
  expect(resources).toContain("v1/configmaps");
  const cluster = await setup({ sources: (kubeconfig) => kubernetesSource(kubeconfig, resources ?? []) });
  await appendFile(join(cluster.dir, "kubemeta.yaml"), `\nslim: ${JSON.stringify(example.slim)}\n`);
  const { server } = cluster;
  server.installResource({ group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true });
  const rollouts = { group: "argoproj.io", version: "v1alpha1", resource: "rollouts", kind: "Rollout" };
  server.installResource({ ...rollouts, namespaced: true });
  const vmis = { group: "kubevirt.io", version: "v1", resource: "virtualmachineinstances" };
  server.installResource({ ...vmis, kind: "VirtualMachineInstance", namespaced: true });
  const kubemeta = await cluster.start();
  cleanups.push(() => kubemeta.proc.kill("SIGKILL"));
  await cluster.ready();

  const metadata = (name: string) => ({ name, namespace: "default", annotations: ANNOTATIONS });
  server.create({ apiVersion: "v1", kind: "ConfigMap", metadata: metadata("settings"), data: { mode: "live" } });
  server.create({
    apiVersion: "argoproj.io/v1alpha1",
    kind: "Rollout",
    metadata: metadata("web"),
    spec: { replicas: 3, strategy: { canary: { steps: [{ setWeight: 20 }, { pause: {} }] } }, paused: false },
    status: { phase: "Healthy", observedGeneration: "7" },
  });
  server.create({
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: metadata("db"),
    spec: { domain: { cpu: { cores: 2 } } },
    status: { phase: "Running", nodeName: NODE },
  });

  const query = "kind=ConfigMap,Rollout,VirtualMachineInstance";
  const items = await waitFor(
    async () => {
      const body = (await (await fetch(`${cluster.url}/v1/objects?${query}`)).json()) as { items: Item[] };
      return body.items.length === 3 ? body.items : undefined;
    },
    10_000,
    "the example's three kinds in /v1/objects",
  );
  const byKind = Object.fromEntries(items.map((item) => [item.kind, item]));
  const kept = { "prometheus.io/scrape": "true", "team.example.com/owner": "payments" };
  expect(byKind.ConfigMap!.object.data).toBeUndefined();
  const annotations = (item: Item) => (item.object.metadata as { annotations?: unknown }).annotations;
  expect(annotations(byKind.ConfigMap!)).toEqual(kept);
  expect(annotations(byKind.Rollout!)).toEqual({ ...kept, "argo-rollouts.argoproj.io/revision": "4" });
  expect(byKind.Rollout!.object).toMatchObject({
    spec: { replicas: 3, strategy: { canary: { steps: [{ setWeight: 20 }, { pause: {} }] } } },
    status: { phase: "Healthy" },
  });
  expect(byKind.Rollout!.object.spec).not.toHaveProperty("paused");
  expect(byKind.VirtualMachineInstance).toMatchObject({
    stream: `node/${NODE}`,
    object: { status: { phase: "Running", nodeName: NODE } },
  });
});
