/** deploy/kubemeta-ha.yaml as a drain meets it: what its PodDisruptionBudget holds back, and what it lets go. */
import { expect, test } from "bun:test";
import { join } from "node:path";

interface Manifest {
  kind: string;
  spec?: {
    replicas?: number;
    minAvailable?: number;
    selector?: { matchLabels: Record<string, string> };
    unhealthyPodEvictionPolicy?: string;
    template?: { metadata: { labels: Record<string, string> } };
  };
}

const manifests = Bun.YAML.parse(
  await Bun.file(join(import.meta.dir, "..", "deploy", "kubemeta-ha.yaml")).text(),
) as Manifest[];

test("deploy/kubemeta-ha.yaml: the PodDisruptionBudget keeps ready replicas, lets a drain evict unready ones", () => {
  const deployment = manifests.find((m) => m.kind === "Deployment")!.spec!;
  const budget = manifests.find((m) => m.kind === "PodDisruptionBudget")!.spec!;
  expect(budget.selector?.matchLabels).toEqual(deployment.template!.metadata.labels);
  // One replica at a time goes; the others serve, one of them leading.
  expect(budget.minAvailable).toBe(deployment.replicas! - 1);
  // With the store down on every replica, all are unready: the default policy (IfHealthyBudget) would refuse every
  // eviction until the store is back, and a node drain would wait for it.
  expect(budget.unhealthyPodEvictionPolicy).toBe("AlwaysAllow");
});
