/**
 * A term's start given up before it reaches the store (its replica stopped, or its Lease lost, while its follower
 * stopped) sends the store nothing: a late `lead()` raises the store's term past the writer's in place, a next
 * leader's, which is fenced once (its term ended, the Lease handed back, a Lease's duration without a leader).
 */
import { expect, test } from "bun:test";
import { createLog } from "../core/committed-log.ts";
import { resolveConfig } from "../host/config.ts";
import { startLeaderTerm } from "../host/leader.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { pluginContext } from "../host/open-store.ts";
import { builtins } from "../plugins/index.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";

const { newDir, makeStore, urlOf } = storeSandbox("file");

test("a term's start whose signal has aborted sends no lead(): the writer in place is not fenced", async () => {
  const dir = newDir();
  const [writer, late] = [makeStore(dir), makeStore(dir)];
  await writer.start();
  const { epoch, head, oldest } = await late.start();
  await writer.lead();
  const config = await resolveConfig(
    { store: { type: "libsql", url: urlOf(dir) } },
    { baseDir: dir, registry: builtins },
  );
  const metrics = createMetrics();
  const logger = silentLogger;
  const log = createLog({ store: late, epoch, head, oldest, logger, metrics, whole: false });
  const start = startLeaderTerm({
    config,
    store: late,
    log,
    logger,
    metrics,
    context: pluginContext(config, logger, metrics),
    onFenced: () => {},
    starting: { stopped: AbortSignal.abort(new Error("lost the Lease")), unansweredMs: Infinity },
  });
  // Not `expect(start).rejects`: it blocks the loop the libsql store's replies come through (store-libsql-fencing).
  const givenUp = await start.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(givenUp).toBeInstanceOf(Error);
  // Was: the start sent lead() before it looked at its signal, and the writer's next commit was refused.
  await writer.commit(batch(run(1, 2), { pods: "100" }));
  expect((await writer.position()).head).toBe(2);
});
