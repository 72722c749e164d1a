/**
 * Fault tests (issue 10): kubemeta as a real process (main.ts) against the simulated API server with pod churn,
 * faults injected at seeded moments. Each ends with the store equal to the API server's truth, the store's versions
 * gap-free with whole prev chains, and every consumer that followed throughout equal to the store, having applied
 * every version once, each the same update the store holds under that version (no version reused).
 *
 * Seeded: KUBEMETA_FAULT_SEED=<n> replays a run (the seed is printed).
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { subscribeNats } from "../client/index.ts";
import { seededRandom, startChurn } from "../simulator/population.ts";
import { expectGapFreeWithWholeChains, waitFor } from "../testing/index.ts";
import {
  cleanups,
  consumeSse,
  expectFollowedWholly,
  kubernetesSource,
  recorder,
  runCleanups,
  setup,
} from "./faults-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { RESOURCES } from "./cluster-checks.ts";
import { json, SseParser, versionsOf, type SseEvent } from "./sse-client.ts";

const SEED = Number(process.env.KUBEMETA_FAULT_SEED ?? 20261204);
console.log(`faults.test.ts seed: ${SEED} (KUBEMETA_FAULT_SEED=${SEED} replays it)`);

afterEach(runCleanups);

test.each([
  ["file:", "file", 20],
  ["ws://", "ws", 5],
] as const)(
  "kill -9 of kubemeta on a %s store at seeded moments during churn: store equals truth, SSE consumer whole",
  async (_, store, times) => {
    const random = seededRandom(SEED);
    const env = await setup({ store });
    let kubemeta = await env.start();
    await env.ready();
    const { rec, sub } = await consumeSse(env.url);
    const churn = startChurn(env.server, { perSecond: 80, seed: SEED });
    const kills: number[] = [];
    for (let i = 0; i < times; i++) {
      const delay = 300 + Math.floor(random() * 1_500);
      kills.push(delay);
      await Bun.sleep(delay);
      kubemeta.proc.kill("SIGKILL");
      await kubemeta.proc.exited;
      kubemeta = await env.start();
    }
    console.log(`kill -9 after ms: ${kills.join(", ")}; churn changes: ${churn.changes()}`);
    churn.stop();
    await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
    const updates = await env.allUpdates();
    expectGapFreeWithWholeChains(updates);
    await expectFollowedWholly(rec, sub, updates, await env.storeState());
    expect(kubemeta.out.text).not.toContain('"level":"error"');
  },
  90_000,
);

test("watch drops, 410s, 429 + Retry-After, 500s, a continue token expiring mid-list: store equals truth", async () => {
  const random = seededRandom(SEED + 1);
  // Pods, the churned resource, through a source listing pages of 10 (about ten pages per list): their relists are
  // paginated LISTs, which a continue token can expire in and a LIST 500 can hit; the other resources stream theirs.
  const env = await setup({
    sources: (kubeconfig) => [
      ...kubernetesSource(kubeconfig, ["pods"], ["name: paged", "streamingList: never", "pageSize: 10"]),
      ...kubernetesSource(
        kubeconfig,
        RESOURCES.filter((r) => r !== "pods"),
      ),
    ],
  });
  const km = await env.start();
  await env.ready();
  const { rec, sub } = await consumeSse(env.url);
  const churn = startChurn(env.server, { perSecond: 80, seed: SEED + 1 });
  const resources = ["pods", "nodes", "services", "endpointslices", "replicasets"];
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const expiryRound = Math.floor(random() * 6);
  for (let round = 0; round < 6; round++) {
    await Bun.sleep(1_000 + Math.floor(random() * 1_000));
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 410, count: 1 + Math.floor(random() * 3) });
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 429, retryAfterSeconds: 1 });
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 500 });
    if (random() < 0.3) env.server.failNext({ verb: "list", resource: "pods", status: 500 });
    if (round === expiryRound) {
      // Pods relist (410 on their next watch), and a page after the first finds its token's snapshot compacted.
      env.server.failNext({ verb: "watch", resource: "pods", status: 410 });
      env.server.failNext({ verb: "list", resource: "pods", status: 410, continued: true });
    }
    if (random() < 0.3) env.server.compact();
    env.server.dropWatches();
  }
  churn.stop();
  const t0 = Date.now();
  // Backoff after repeated failures grows (with jitter) to several seconds per resource: allow for it.
  await waitFor(env.matchesTruth, 45_000, "the store to equal the API server").catch((e) => {
    const warnings = km.out.text.split("\n").filter((l) => /"level":"(warn|error)"/.test(l));
    console.log(
      warnings
        .slice(-30)
        .map((l) => l.slice(0, 300))
        .join("\n"),
    );
    throw e;
  });
  console.log(`converged in ${Date.now() - t0} ms; requests: ${JSON.stringify(env.server.requests())}`);
  expect(km.out.lines("continue token expired; listing again").map((l) => l.resource)).toContain("pods");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  // The list the expired token aborted deleted nothing: no object comes back after its DELETED.
  const deleted = new Set<string>();
  const resurrected: number[] = [];
  for (const u of updates) {
    if (deleted.has(u.uid)) resurrected.push(u.version);
    if (u.type === "DELETED") deleted.add(u.uid);
  }
  expect(resurrected).toEqual([]);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
}, 90_000);

test("nats-server stopped and restarted twice during churn: a subscribeNats consumer converges", async () => {
  const random = seededRandom(SEED + 2);
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const env = await setup({ sinks: ["  - type: nats", `    servers: ["${nats.url}"]`] });
  await env.start();
  await env.ready();
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  cleanups.push(() => nc.close());
  const rec = recorder();
  const sub = subscribeNats({ nc, cluster: "faults", streams: ["all"], retry: { maxMs: 300 }, ...rec.handlers });
  cleanups.push(() => sub.stop());
  await sub.synced;
  const churn = startChurn(env.server, { perSecond: 80, seed: SEED + 2 });
  for (let i = 0; i < 2; i++) {
    await Bun.sleep(1_000 + Math.floor(random() * 1_500));
    await nats.stop();
    await Bun.sleep(1_000 + Math.floor(random() * 2_000));
    await nats.restart();
  }
  await Bun.sleep(1_000);
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
}, 60_000);

test("a slow SSE subscriber stopped 8 s during churn: cut off or not, it ends equal", async () => {
  const random = seededRandom(SEED + 3);
  const env = await setup({ sse: "{ type: sse, bufferBytes: 65536 }" });
  await env.start();
  await env.ready();
  const slowFile = join(env.dir, "slow.sse");
  const curl = (file: string, lastEventId?: string) =>
    Bun.spawn(
      ["curl", "-sN", "-o", file, ...(lastEventId ? ["-H", `Last-Event-ID: ${lastEventId}`] : [])].concat(
        `${env.url}/v1/watch?stream=all`,
      ),
      { stdout: "ignore", stderr: "ignore" },
    );
  const slow = curl(slowFile);
  cleanups.push(() => slow.kill("SIGKILL"));
  const fileEvents = async (file: string) => {
    const events: SseEvent[] = [];
    if (await Bun.file(file).exists()) new SseParser((event) => events.push(event)).push(await Bun.file(file).text());
    return events;
  };
  await waitFor(async () => (await fileEvents(slowFile)).some((e) => e.type === "SYNCED"), 10_000, "curl to sync");
  const churn = startChurn(env.server, { perSecond: 600, seed: SEED + 3 });
  await Bun.sleep(500 + Math.floor(random() * 1_000));
  slow.kill("SIGSTOP");
  await Bun.sleep(8_000);
  slow.kill("SIGCONT");
  await Bun.sleep(1_000 + Math.floor(random() * 1_000));
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  const state = await env.storeState();
  const head = updates.at(-1)!.version;

  // The slow subscriber was cut off (OVERFLOW: the server closed it, curl ends) or kept up (it gets to the head);
  // as an EventSource would, a cut-off one resumes from its last id.
  await waitFor(
    async () => slow.exitCode !== null || versionsOf(await fileEvents(slowFile)).at(-1) === head,
    20_000,
    "the slow one to be cut off or to catch up",
  );
  const overflowed = slow.exitCode !== null;
  let events = await fileEvents(slowFile);
  console.log(`slow subscriber ${overflowed ? `cut off with ${events.at(-1)?.type}` : "kept its connection"}`);
  if (overflowed) {
    const resumed = curl(join(env.dir, "resumed.sse"), events.at(-1)!.lastEventId);
    cleanups.push(() => resumed.kill("SIGKILL"));
    await waitFor(
      async () => versionsOf(await fileEvents(join(env.dir, "resumed.sse"))).at(-1) === head,
      20_000,
      "the resumed subscriber to get everything",
    );
    const rest = await fileEvents(join(env.dir, "resumed.sse"));
    expect(rest[0]?.type).not.toBe("RESET");
    events = [...events, ...rest];
  }
  const syncedAt = json<{ version: number }>(events.find((e) => e.type === "SYNCED")!).version;
  const live = events.slice(events.findIndex((e) => e.type === "SYNCED") + 1);
  expect(versionsOf(live)).toEqual(updates.filter((u) => u.version > syncedAt).map((u) => u.version));
  const slowState = new Map<string, number>();
  for (const event of events) {
    if (!["ADDED", "MODIFIED", "DELETED"].includes(event.type)) continue;
    const e = json<Envelope>(event);
    if (e.type === "DELETED") slowState.delete(e.uid);
    else slowState.set(e.uid, e.version);
  }
  expect(slowState).toEqual(state);
}, 60_000);

test("store unwritable (file size limit) during churn: not ready, no crash, nothing lost", async () => {
  const env = await setup();
  let kubemeta = await env.start();
  await env.ready();
  kubemeta.proc.kill("SIGTERM");
  expect(await kubemeta.proc.exited).toBe(0);
  const sizes = await Promise.all(
    ["kubemeta.db", "kubemeta.db-wal"].map(async (f) =>
      (await Bun.file(join(env.dir, "data", f)).exists()) ? Bun.file(join(env.dir, "data", f)).size : 0,
    ),
  );
  const limitKiB = Math.ceil(Math.max(...sizes) / 1024) + 128;
  console.log(`store files ${sizes.join(" / ")} bytes; soft RLIMIT_FSIZE ${limitKiB} KiB`);
  // Soft limit only (SIGXFSZ ignored: the write fails with EFBIG, as on a full disk), so it can be lifted later.
  kubemeta = await env.start(["bash", "-c", `trap "" XFSZ; ulimit -S -f ${limitKiB}; exec "$@"`, "bash"]);
  await env.ready();
  const commitFailures = async () =>
    Number(/^kubemeta_commit_failures_total (\d+)$/m.exec(await (await fetch(`${env.url}/metrics`)).text())?.[1]);
  // A series from the start, so that an alert on its rate has one before the first failure.
  expect(await commitFailures()).toBe(0);
  const { rec, sub } = await consumeSse(env.url);
  const churn = startChurn(env.server, { perSecond: 150, seed: SEED + 4 });
  const readiness = await waitFor(
    async () => {
      const response = await fetch(`${env.url}/readyz`);
      return response.status === 503 && response.json();
    },
    20_000,
    "/readyz to answer 503",
  );
  expect(readiness).toMatchObject({ ready: false, waiting: [expect.stringMatching(/^store not writable: /)] });
  const failures = await commitFailures();
  expect(failures).toBeGreaterThan(0);
  // No crash: it goes on retrying its commits (at most 2 s apart), and goes on answering.
  await waitFor(async () => (await commitFailures()) >= failures + 2, 15_000, "two more failed commits");
  expect(kubemeta.proc.exitCode).toBeNull();
  // Writable again, in the same process: the limit is lifted, and it is ready again while the churn goes on.
  const lift = Bun.spawnSync(["prlimit", "--pid", String(kubemeta.proc.pid), "--fsize=unlimited:unlimited"]);
  expect(lift.exitCode).toBe(0);
  await env.ready();
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
  expect(kubemeta.proc.exitCode).toBeNull();
  // Each outage (a small commit may get through between failures, ending one) is an error at its first failure, no
  // warning (one a minute at most: each lasts less), and a line once it is over with how many attempts failed.
  const failed = kubemeta.out.lines("store commit failed; retrying");
  const back = kubemeta.out.lines("store commits succeed again");
  expect(failed.length).toBeGreaterThan(0);
  expect(failed.map((line) => line.level)).toEqual(failed.map(() => "error"));
  expect(back.map((line) => line.level)).toEqual(failed.map(() => "info"));
  expect(back.reduce((sum, line) => sum + (line.failedAttempts as number), 0)).toBe(await commitFailures());
  for (const line of back) expect(line.downMs).toBeGreaterThanOrEqual(0);
}, 60_000);
