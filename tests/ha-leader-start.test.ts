/**
 * A term's start given up before it reaches the store (its replica stopped, or its Lease lost, while its follower
 * stopped; or paused past its Lease since it won it) sends the store nothing: a late `lead()` raises the store's term
 * past the writer's in place, a next leader's, which is fenced once (its term ended, the Lease handed back, a Lease's
 * duration without a leader). Paused after its check, the store's lead() checks again between its read of the
 * term and its raise; a replica whose lead() finds it raised meanwhile follows the replica that leads, with a warning.
 */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { createLog } from "../core/committed-log.ts";
import { resolveConfig } from "../host/config.ts";
import { type LeaderOptions, LeaseNotHeldError, startLeaderTerm } from "../host/leader.ts";
import { Terms } from "../host/leadership.ts";
import { createLogger, silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { pluginContext } from "../host/open-store.ts";
import { electorFor } from "../host/ha-lease.ts";
import { startReplication } from "../host/replication.ts";
import { type Lease, microTime } from "../kube/lease.ts";
import { builtins } from "../plugins/index.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { waitFor } from "../testing/index.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";

const { newDir, makeStore, urlOf } = storeSandbox("file");
const server = await startTestApiServer();
afterAll(() => server.stop());

/**
 * A writer in place (it took the store's term) and a late replica of the same store, with what its term needs; the
 * writer's commit says whether the late one's start fenced it.
 */
async function writerAndLate() {
  const dir = newDir();
  const [writer, store] = [makeStore(dir), makeStore(dir)];
  await writer.start();
  const { epoch, head, oldest } = await store.start();
  await writer.lead();
  const config = await resolveConfig(
    { store: { type: "libsql", url: urlOf(dir) } },
    { baseDir: dir, registry: builtins },
  );
  const metrics = createMetrics();
  const log = createLog({ store, epoch, head, oldest, logger: silentLogger, metrics, whole: false });
  const writerCommits = async () => {
    await writer.commit(batch(run(1, 2), { pods: "100" }));
    return (await writer.position()).head;
  };
  /**
   * The late replica's term started with `starting`: what it threw, or undefined. (Not `expect(start).rejects`: it
   * blocks the loop the libsql store's replies come through, store-libsql-fencing.)
   */
  const lateStart = (starting: LeaderOptions["starting"]) =>
    startLeaderTerm({
      config,
      store,
      log,
      logger: silentLogger,
      metrics,
      context: pluginContext(config, silentLogger, metrics),
      onFenced: () => {},
      starting,
    }).then(
      () => undefined,
      (error: unknown) => error,
    );
  return { context: { dir, writer, store, log, config, metrics }, writerCommits, lateStart };
}

test("a term's start whose signal has aborted sends no lead(): the writer in place is not fenced", async () => {
  const { writerCommits, lateStart } = await writerAndLate();
  const givenUp = await lateStart({ stopped: AbortSignal.abort(new Error("lost the Lease")), unansweredMs: Infinity });
  expect(givenUp).toBeInstanceOf(Error);
  // Was: the start sent lead() before it looked at its signal, and the writer's next commit was refused.
  expect(await writerCommits()).toBe(2);
});

test("a term's start paused after its Lease check: the store's lead() checks again, and raises no term", async () => {
  const { writerCommits, lateStart } = await writerAndLate();
  // Held when the start looks, then a pause (SIGSTOP, a long GC) before its lead() reaches the store: no more.
  let checks = 0;
  const held = () => checks++ === 0;
  const givenUp = await lateStart({ stopped: new AbortController().signal, unansweredMs: Infinity, held });
  expect(givenUp).toBeInstanceOf(LeaseNotHeldError);
  // Was: lead() raised the store's term after the pause, and the writer's next commit was refused.
  expect(await writerCommits()).toBe(2);
});

type LoggedLine = { msg: string; level: string; reason?: string };

/** The late replica's Lease: a second, as a pause past it takes no longer than a test should. */
const DURATIONS = { leaseDurationMs: 1_000, renewDeadlineMs: 700, retryPeriodMs: 100 };
const GAVE_UP = "lost the Lease while becoming the store's writer; following again";
const LEADING = "leading: this replica writes the store and runs the sources";

/** The late replica contending for the Lease `leaseName`, its lines in `lines`; `onLine` sees each as it comes. */
async function lateReplica(
  context: Awaited<ReturnType<typeof writerAndLate>>["context"],
  leaseName: string,
  onLine: (line: LoggedLine, lines: LoggedLine[]) => void = () => {},
) {
  const { dir, store, log, config, metrics } = context;
  const kubeconfig = join(dir, "kubeconfig");
  await server.writeKubeconfig(kubeconfig, "token");
  const lease = { name: leaseName, namespace: "default", namespaceFrom: "config" } as const;
  const ha = { lease, identity: "late", kubeconfig, followIntervalMs: 50, ...DURATIONS };
  const lines: LoggedLine[] = [];
  const logger = createLogger({
    write(text) {
      const line = JSON.parse(text) as LoggedLine;
      lines.push(line);
      onLine(line, lines);
    },
  });
  const replication = startReplication({
    ha,
    elector: electorFor(ha, logger, metrics),
    leaderOptions: { config, store, log, logger, metrics, context: pluginContext(config, logger, metrics) },
    terms: new Terms(),
    logger,
    onReplaced: () => {},
  });
  return { replication, lines };
}

test("a replica paused past its renew deadline as it wins the Lease sends no lead(); it follows", async () => {
  const { context, writerCommits } = await writerAndLate();
  const { replication, lines } = await lateReplica(context, "paused-winner", (line, lines) => {
    if (line.msg !== "acquired the Lease; leading" || lines.filter((l) => l.msg === line.msg).length > 1) return;
    // A pause (a long GC, SIGSTOP) as the event loop sees it, from the Lease's answer on: the Lease expired for the
    // others meanwhile, one of them took it, and the writer in place leads.
    const pausedUntil = performance.now() + DURATIONS.renewDeadlineMs + 100;
    while (performance.now() < pausedUntil);
    server.patch("Lease", "default", "paused-winner", (object) => {
      const taken = object as unknown as Lease;
      taken.spec = { ...taken.spec, holderIdentity: "other", leaseDurationSeconds: 3600, renewTime: microTime() };
    });
  });
  const ended = (line: { msg: string }) => line.msg === GAVE_UP || line.msg === LEADING;
  await waitFor(() => lines.some(ended), 10_000, "the start given up, or the term begun");
  // Was: the start sent lead(), its Lease expired, and the writer's next commit was refused.
  expect(await writerCommits()).toBe(2);
  expect(lines.find(ended)).toMatchObject({ msg: GAVE_UP, reason: new LeaseNotHeldError().message });
  await replication.stop();
}, 20_000);

test("a replica whose lead() finds the term raised since its read follows with a warning: another leads", async () => {
  const { context } = await writerAndLate();
  const { store, writer } = context;
  const lead = store.lead.bind(store);
  // Another replica raises the store's term between this one's read of it and its raise (a pause after its check).
  store.lead = (check) =>
    lead(async () => {
      await check?.();
      store.lead = lead;
      await writer.lead();
    });
  const { replication, lines } = await lateReplica(context, "term-taken");
  await waitFor(() => lines.some((line) => line.msg === LEADING), 10_000, "the term begun at the next try");
  await replication.stop();
  // Was: the error of an outage (`cannot become the store's writer; following again`), and a backoff before the next.
  expect(lines.find((line) => line.msg === GAVE_UP)).toMatchObject({
    level: "warn",
    reason: "the store's term went from 1 to 2 as this writer took it; another leads",
  });
  expect(lines.filter((line) => line.level === "error")).toEqual([]);
}, 20_000);
