/** deploy/'s manifests as the tests and bench/cgroup.ts read them: each file's documents, what its ConfigMap ships. */
import { join } from "node:path";

/** What every reader reads of a manifest; a reader's own interface adds the fields it reads beside. */
export interface Manifest {
  kind: string;
  data?: Record<string, string>;
}

interface Deployment extends Manifest {
  spec?: { template?: { spec: { containers: { resources: { limits: { memory: string } } }[] } } };
}

/** The documents of deploy/<file>. */
export const manifestsOf = async <M extends Manifest = Manifest>(file: string): Promise<M[]> =>
  Bun.YAML.parse(await Bun.file(join(import.meta.dir, "..", "deploy", file)).text()) as M[];

/** The kubemeta.yaml the ConfigMap ships, as its text. */
export const shippedConfig = (manifests: Manifest[]): string | undefined =>
  manifests.find((m) => m.kind === "ConfigMap")?.data?.["kubemeta.yaml"];

/** The shipped config's `sse` sink entry, as written (its keys, `type` with them). */
export function shippedSseSink(manifests: Manifest[]): Record<string, unknown> & { type: string } {
  const config = Bun.YAML.parse(shippedConfig(manifests)!) as { sinks: (Record<string, unknown> & { type: string })[] };
  return config.sinks.find((sink) => sink.type === "sse")!;
}

/** The kubemeta container's `limits.memory` (a quantity in `Mi`), in MiB. */
export function memoryLimitMib(manifests: Manifest[]): number {
  const deployment = manifests.find((m) => m.kind === "Deployment") as Deployment;
  return Number(/^(\d+)Mi$/.exec(deployment.spec!.template!.spec.containers[0]!.resources.limits.memory)![1]);
}
