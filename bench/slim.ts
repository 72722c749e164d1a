/**
 * How fast the source and the core turn raw pod JSON into slim copies, and what skimming
 * `metadata.managedFields` before JSON.parse (plugins/sources/kubernetes/skim.ts) buys.
 * Run: bun run bench/slim.ts [rounds]   (default 5)
 *
 * Inputs as the source reads them: watch event lines and whole LIST pages, of real pods
 * (the kind cluster captures, 6–10 KB each) and of the simulator's pods. The old and the
 * new path run interleaved, a few texts at a time, so that the load of the machine (2
 * shared cores) weighs on both alike; the ratios are the medians of the per-round ratios.
 * Rates count the raw bytes and objects read, not the bytes left after skimming. The
 * simulator's pods carry less managedFields than real ones (14 % of their bytes against
 * about 40 %), which is why the two are shown apart.
 */
import { availableParallelism, cpus } from "node:os";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject } from "../sdk/model.ts";
import { makePod } from "../simulator/pods.ts";
import { parseSkimmed, skimManagedFields } from "../plugins/sources/kubernetes/skim.ts";
import { listItems } from "../tests/fixtures/k8s/load.ts";

const rounds = Number(process.argv[2] ?? 5);
/** Each measurement runs this long. */
const MEASURE_MS = 400;
const PAGE_SIZE = 500;

interface Input {
  label: string;
  /** JSON texts, read in turn. */
  texts: string[];
  /** The pods in one text. */
  objectsPerText: number;
  /** What the core does with one parsed text: slim and digest each pod. */
  slimAll(parsed: unknown): number;
}

const realPods = [
  ...(await listItems("real/kind-v1.36.2/core.v1.PodList.json")),
  ...(await listItems("real/kind-v1.36.2/core.v1.PodList.job-pod.json")),
];
const simulatedPods = Array.from({ length: 200 }, (_, i) =>
  makePod({
    name: `api-${i}-7d9f8c6b5-x2x9q`,
    namespace: "payments",
    node: `ip-10-0-${i % 20}-${i % 250}.eu-west-1.compute.internal`,
    owner: { kind: "ReplicaSet", name: "api-7d9f8c6b5", uid: crypto.randomUUID() },
  }),
);

const slimEvent = (parsed: unknown) => digest(slim("Pod", (parsed as { object: KubeObject }).object));
const slimPage = (parsed: unknown) => {
  let sink = 0;
  for (const item of (parsed as { items: KubeObject[] }).items) sink ^= digest(slim("Pod", item));
  return sink;
};

function watchLines(label: string, pods: KubeObject[]): Input {
  const texts = pods.map((pod) =>
    JSON.stringify({ type: "MODIFIED", object: { kind: "Pod", apiVersion: "v1", ...pod } }),
  );
  return { label, texts, objectsPerText: 1, slimAll: slimEvent };
}

function listPages(label: string, pods: KubeObject[]): Input {
  const items = Array.from({ length: PAGE_SIZE }, (_, i) => {
    const { kind: _kind, apiVersion: _apiVersion, ...item } = pods[i % pods.length]!;
    return item;
  });
  const page = JSON.stringify({
    kind: "PodList",
    apiVersion: "v1",
    metadata: { resourceVersion: "123456", continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ" },
    items,
  });
  return { label, texts: [page], objectsPerText: PAGE_SIZE, slimAll: slimPage };
}

const inputs = [
  watchLines("real pods, watch lines", realPods),
  watchLines("simulator pods, watch lines", simulatedPods),
  listPages(`real pods, LIST page of ${PAGE_SIZE}`, realPods),
  listPages(`simulator pods, LIST page of ${PAGE_SIZE}`, simulatedPods),
];

type Path = (input: Input, text: string) => number;
const parse: Path = (_, text) => (JSON.parse(text) === null ? 1 : 0);
const skimParse: Path = (_, text) => (parseSkimmed(text) === null ? 1 : 0);
const parseSlim: Path = (input, text) => input.slimAll(JSON.parse(text));
const skimParseSlim: Path = (input, text) => input.slimAll(parseSkimmed(text));
/** Each pair is measured interleaved: the old path, then the new one. */
const PAIRS: [string, Path, string, Path][] = [
  ["JSON.parse", parse, "skim + JSON.parse", skimParse],
  ["JSON.parse + slim + digest", parseSlim, "skim + JSON.parse + slim + digest", skimParseSlim],
];
/** About 100 KB of JSON per batch: a dozen watch lines, or one LIST page. */
const batchOf = (input: Input) => Math.max(1, Math.round(100_000 / input.texts[0]!.length));

/**
 * Texts per second of paths `a` and `b` on `input`, run in alternating batches for 2 × MEASURE_MS after a
 * warm-up: a burst of load from elsewhere on the machine falls on both.
 */
function measurePair(input: Input, a: Path, b: Path): [number, number] {
  const { texts } = input;
  let sink = 0;
  for (let i = 0; i < 50; i++) sink ^= a(input, texts[i % texts.length]!) ^ b(input, texts[i % texts.length]!);
  const batch = batchOf(input);
  const spent = [0, 0];
  let next = 0;
  let batches = 0;
  while (spent[0]! + spent[1]! < 2 * MEASURE_MS * 1e6) {
    const first = next;
    for (const [p, path] of [a, b].entries()) {
      const start = Bun.nanoseconds();
      for (let i = 0; i < batch; i++) sink ^= path(input, texts[(first + i) % texts.length]!);
      spent[p]! += Bun.nanoseconds() - start;
    }
    next += batch;
    batches++;
  }
  if (sink === 0.5) console.log(sink); // keeps the work observable
  return [(batches * batch) / (spent[0]! / 1e9), (batches * batch) / (spent[1]! / 1e9)];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const rate = (n: number) => Math.round(n).toLocaleString("en-US").padStart(12);

console.log(`machine: ${availableParallelism()} CPUs, ${cpus()[0]?.model ?? "unknown CPU"}; Bun ${Bun.version}`);
console.log(`${rounds} rounds of 2 × ${MEASURE_MS} ms per pair of paths, interleaved ~100 KB of JSON at a time;`);
console.log("rates are medians of the rounds, ratios medians of the per-round ratios");
for (const input of inputs) {
  const bytes = input.texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0) / input.texts.length;
  const skimmed = input.texts.reduce((sum, text) => sum + Buffer.byteLength(skimManagedFields(text)), 0);
  const slimBytes = JSON.stringify(slim("Pod", realPods[0]!)).length;
  console.log(
    `\n${input.label}: ${Math.round(bytes).toLocaleString("en-US")} B per text, ` +
      `${Math.round((100 * skimmed) / input.texts.length / bytes)} % left after skimming` +
      (input === inputs[0] ? ` (a slim pod: ~${slimBytes} B)` : ""),
  );
  for (const [oldLabel, oldPath, newLabel, newPath] of PAIRS) {
    const runs = Array.from({ length: rounds }, () => measurePair(input, oldPath, newPath));
    for (const [p, label] of [oldLabel, newLabel].entries()) {
      const perSecond = median(runs.map((run) => run[p]!));
      console.log(
        `  ${label.padEnd(34)} ${rate(perSecond * input.objectsPerText)} objects/s ` +
          `${((perSecond * bytes) / 2 ** 20).toFixed(0).padStart(6)} MiB/s`,
      );
    }
    const ratios = runs.map(([before, after]) => after / before).sort((x, y) => x - y);
    console.log(
      `  ${newLabel} vs ${oldLabel}: ${median(ratios).toFixed(2)}× ` +
        `(rounds ${ratios[0]!.toFixed(2)}–${ratios[ratios.length - 1]!.toFixed(2)})`,
    );
  }
}
