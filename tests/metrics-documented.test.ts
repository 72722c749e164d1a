/**
 * Operators build dashboards and alerts from README's metrics: what kubemeta exposes is documented there, what README
 * names exists, with the labels README gives it. Checked on real processes (main.ts): one with every built-in plugin
 * on a libSQL file (kubernetes source on the simulated API server, sse, nats on a real nats-server, webhook to a
 * loopback receiver, jsonl), synced and delivered; one replica with `ha` on a remote store, leading.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { subscribeSse } from "../client/index.ts";
import { waitFor } from "../testing/index.ts";
import { RESOURCES } from "./cluster-checks.ts";
import { cleanups, kubernetesSource, runCleanups, setup } from "./faults-cluster.ts";
import { setupHa } from "./ha-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { SECRET, startReceiver } from "./webhook-receiver.ts";
import {
  describing,
  exposedFamilies,
  type Family,
  mergeFamilies,
  metricNamesInCode,
  readmeMetrics,
  valuesNamedWith,
} from "./metrics-readme.ts";

const ROOT = join(import.meta.dir, "..");
const README = await Bun.file(join(ROOT, "README.md")).text();
const CONSUMING_SINKS = ["nats", "webhook", "jsonl"];
/** Labels whose values come from the cluster, the config or the network (kinds, sink names, HTTP statuses). */
const OPEN_LABELS = new Set(["kind", "resource", "sink", "plugin", "code", "outcome"]);

/** ConfigMaps as kube-apiserver serves them (the simulator has none built in): a kind no slim rule names. */
const CONFIGMAPS = { group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true };
const CONFIGMAP = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "app", namespace: "default" }, data: {} };

let exposed: Map<string, Family>;

/**
 * Events a healthy run has none of, so that the families counting them have series whose labels are checked: a
 * ConfigMap dropped (at the start), a change the slim copy does not see, a pod deleted while the watches were cut off
 * and the API server's history compacted (a relist that no longer finds it).
 */
async function causeRareEvents(env: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const [first, second] = env.server.names("Pod");
  env.server.patch("Pod", first!.namespace, first!.name, () => {});
  env.server.stallWatches(true);
  env.server.delete("Pod", second!.namespace, second!.name);
  env.server.compact();
  env.server.dropWatches();
  env.server.stallWatches(false);
  for (const name of ["kubemeta_updates_suppressed_total", "kubemeta_retracted_objects_total"])
    await waitFor(async () => (await env.metric(name)) !== undefined, 10_000, `a series of ${name}`);
}

/** The /metrics of a process with every built-in plugin, once synced and each sink has delivered all of it. */
async function everyPluginMetrics(): Promise<string> {
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const receiver = await startReceiver();
  cleanups.push(() => receiver.stop());
  const env = await setup({
    sources: (kubeconfig) => kubernetesSource(kubeconfig, [...RESOURCES, "v1/configmaps"]),
    sinks: [
      `  - { type: nats, servers: ["${nats.url}"] }`,
      `  - { type: webhook, url: "${receiver.url}", secret: ${SECRET}, batch: { linger: 10ms } }`,
      "  - { type: jsonl, path: updates.jsonl }",
    ],
  });
  env.server.installResource(CONFIGMAPS);
  env.server.create(CONFIGMAP);
  await env.start();
  await env.ready();
  await causeRareEvents(env);
  // A stream opened and closed: the SSE sink's subscriber and reset series.
  const sub = subscribeSse({ url: env.url, streams: ["all"] });
  await sub.synced;
  await sub.stop();
  for (const sink of CONSUMING_SINKS)
    await waitFor(async () => (await env.metric("kubemeta_sink_lag_versions", { sink })) === 0, 10_000, sink);
  expect(receiver.accepted().length).toBeGreaterThan(0);
  return (await fetch(`${env.url}/metrics`)).text();
}

/** The /metrics of a lone `ha` replica once it leads and is ready. */
async function haReplicaMetrics(): Promise<string> {
  const env = await setupHa({ replicas: 1 });
  cleanups.push(() => env.destroy());
  const replica = await env.start(0);
  await env.leading(replica);
  await env.ready(replica);
  return (await fetch(`${replica.url}/metrics`)).text();
}

beforeAll(async () => {
  const texts = await Promise.all([everyPluginMetrics(), haReplicaMetrics()]);
  exposed = mergeFamilies(texts.map(exposedFamilies));
}, 60_000);

afterAll(runCleanups);

const documented = readmeMetrics(README);

test("every metric family the processes expose is named in README.md", () => {
  expect([...exposed.keys()].filter((name) => !documented.names.has(name))).toEqual([]);
});

test("every kubemeta_ name README.md gives is exposed, or spelled by kubemeta's code: no ghost metric", async () => {
  const inCode = await metricNamesInCode(ROOT);
  expect([...documented.names].filter((name) => !exposed.has(name) && !inCode.has(name))).toEqual([]);
});

test("every kubemeta_ name kubemeta's code spells is named in README.md, exposed in this run or not", async () => {
  const undocumented = [...(await metricNamesInCode(ROOT))].filter(([name]) => !documented.names.has(name));
  expect(undocumented.map(([name, file]) => `${name} (${file})`)).toEqual([]);
});

test("the labels README.md gives a metric are those its series carry", () => {
  const wrong = documented.claims.flatMap((claim) => {
    const family = exposed.get(claim.metric);
    if (!family?.sampled) return [];
    const has = [...family.labels.keys()].sort();
    const fits = claim.complete
      ? claim.labels.toSorted().join() === has.join()
      : claim.labels.every((label) => family.labels.has(label));
    return fits ? [] : [`README.md:${claim.line}: ${claim.metric}{${claim.labels}}, exposed with {${has}}`];
  });
  expect(wrong).toEqual([]);
});

test("README.md gives the labels of every labelled family, and the values of those not open-ended", () => {
  const wrong = [...exposed].flatMap(([metric, family]) => {
    if (family.labels.size === 0) return [];
    if (!documented.claims.some((claim) => claim.metric === metric)) return [`${metric}: no labels given`];
    const named = valuesNamedWith(README, metric);
    return [...family.labels]
      .filter(([label]) => !OPEN_LABELS.has(label))
      .flatMap(([label, values]) => [...values].filter((value) => !named.has(value)).map((v) => `${label}="${v}"`))
      .map((series) => `${metric}{${series}}: the value is not named where the metric is described`);
  });
  expect(wrong).toEqual([]);
});

test("README.md calls each histogram a histogram where it describes it: its series are _bucket, _sum, _count", () => {
  const histograms = [...exposed].filter(([, family]) => family.type === "histogram").map(([name]) => name);
  expect(histograms.filter((name) => !describing(README, name).some((block) => block.includes("histogram")))).toEqual(
    [],
  );
});

test("every documented family with labels has series in the run: no label claim goes unchecked", () => {
  const unsampled = documented.claims.filter((claim) => !exposed.get(claim.metric)?.sampled);
  expect([...new Set(unsampled.map((claim) => claim.metric))]).toEqual([]);
});
