/**
 * The alert README's "Health, metrics, logs" suggests for a stale source, evaluated as Prometheus would over two
 * scrapes of real kubemeta processes (each series given the `job` and `instance` labels a scrape adds): quiet in
 * normal operation, a quiet cluster and an `ha` replica deposed included, and firing for every resource once the API
 * server is away, or when it refuses kubemeta from the start.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { waitFor } from "../testing/index.ts";
import { RESOURCES } from "./cluster-checks.ts";
import { cleanups, runCleanups, setup } from "./faults-cluster.ts";
import { LEASE_MS, setupHa, TAKEOVER_MS } from "./ha-cluster.ts";

afterEach(runCleanups);

const README = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
const STALENESS = /`([^`]*increase\(kubemeta_source_events_total\[5m\]\)[^`]*)`/.exec(README)![1]!;
/** The alert's 5 minutes here: the simulator sends a bookmark every 200 ms, a real server about one a minute. */
const WINDOW_MS = 2_000;

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
}

/** The samples of `name` on each kubemeta at `urls`, labelled as a Prometheus job `kubemeta` scraping them would. */
async function scrape(name: string, urls: string[]): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (const url of urls) {
    for (const line of (await (await fetch(`${url}/metrics`)).text()).split("\n")) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match?.[1] !== name) continue;
      const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      samples.push({ labels: { ...labels, job: "kubemeta", instance: new URL(url).host }, value: Number(match[3]) });
    }
  }
  return samples;
}

/**
 * The label sets `increase(<name>[…]) == 0` returns, optionally under `sum by (…)`, over the samples of a window's
 * start and end (a counter that went down was reset: its increase is its value); any other form fails the test.
 */
function firing(expression: string, before: Sample[], after: Sample[]): Labels[] {
  const form = /^(?:sum by \(([\w, ]+)\) \()?increase\((\w+)\[5m\]\)\)?\)? == 0$/.exec(expression.trim());
  if (!form) throw new Error(`README's staleness alert has a form this test cannot evaluate: ${expression}`);
  const by = form[1]?.split(",").map((label) => label.trim());
  const key = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());
  const start = new Map(before.map((s) => [key(s.labels), s.value]));
  const groups = new Map<string, { labels: Labels; increase: number }>();
  for (const { labels, value } of after) {
    const was = start.get(key(labels)) ?? 0;
    const grouped = by ? Object.fromEntries(by.map((label) => [label, labels[label] ?? ""])) : labels;
    const group = groups.get(key(grouped)) ?? { labels: grouped, increase: 0 };
    group.increase += value >= was ? value - was : value;
    groups.set(key(grouped), group);
  }
  return [...groups.values()].filter((group) => group.increase === 0).map((group) => group.labels);
}

async function evaluateOver(urls: string[]): Promise<Labels[]> {
  const before = await scrape("kubemeta_source_events_total", urls);
  await Bun.sleep(WINDOW_MS);
  return firing(STALENESS, before, await scrape("kubemeta_source_events_total", urls));
}

test("the staleness alert: quiet over a quiet cluster, firing for each resource with the API server away", async () => {
  const env = await setup();
  await env.start();
  await env.ready();
  // No change in the cluster: each resource's ADDED and MODIFIED stay flat, its bookmarks go on.
  expect(await evaluateOver([env.url])).toEqual([]);

  await env.server.stop();
  const failed = () => env.metric("kubemeta_source_requests_total", { code: "error" });
  await waitFor(async () => (await failed()) ?? 0, 10_000, "a request that found no API server");
  const stale = await evaluateOver([env.url]);
  expect(stale.map((labels) => labels.resource).sort()).toEqual([...RESOURCES].sort());
}, 60_000);

// A token revoked, or a role not bound, before kubemeta starts: no resource ever gets an event.
test.each([401, 403])(
  "the staleness alert fires for each resource when the API server answers %d from the start",
  async (code) => {
    const env = await setup();
    if (code === 401) {
      const kubeconfig = join(env.dir, "kubeconfig");
      await Bun.write(kubeconfig, (await Bun.file(kubeconfig).text()).replace(env.server.token, "revoked"));
    } else env.server.failNext({ status: 403, count: Number.POSITIVE_INFINITY });
    await env.start();
    for (const resource of RESOURCES) {
      const refused = () => env.metric("kubemeta_source_requests_total", { resource, code: String(code) });
      await waitFor(refused, 10_000, `a ${code} for ${resource}`);
    }
    const stale = await evaluateOver([env.url]);
    expect(stale.map((labels) => labels.resource).sort()).toEqual([...RESOURCES].sort());
  },
  60_000,
);

test("the staleness alert is quiet over an ha deployment whose leader was deposed and follows", async () => {
  const env = await setupHa({ replicas: 2, storePaths: true, storeTimeout: "2s" });
  cleanups.push(env.destroy);
  const deposed = await env.start(0);
  await env.leading(deposed);
  const standby = await env.start(1);
  await env.ready(standby);
  // Cut off from the store, the leader ends its term; the standby leads; the deposed one follows once the path is back.
  env.storePaths[0]!.partition();
  const ended = () => deposed.out.lines("no longer leading; following the store")[0];
  await waitFor(ended, LEASE_MS + 10_000, "the term's end");
  await env.leading(standby, TAKEOVER_MS);
  env.storePaths[0]!.heal();
  await env.ready(deposed, 15_000);
  // The deposed replica keeps the counters of its term, flat.
  expect(await env.metric(deposed.url, "kubemeta_source_events_total", { resource: "pods" })).toBeGreaterThan(0);
  expect(await evaluateOver([deposed.url, standby.url])).toEqual([]);
}, 60_000);
