/**
 * What tests/ha-chaos.test.ts runs its faults on: the replicas of tests/ha-cluster.ts by index, each killed and
 * started again as a faulted pod is, and the test libSQL server stopped and started again on its port and file.
 */
import { join } from "node:path";
import { waitFor } from "../testing/index.ts";
import { cleanups } from "./faults-cluster.ts";
import { type Replica, STORE_TOKEN, type setupHa } from "./ha-cluster.ts";
import { type HranaServer, startHranaServer } from "./hrana-server.ts";

type HaEnv = Awaited<ReturnType<typeof setupHa>>;

/** The store server, down between `stop` and `start`; the replicas reach it at the same address again. */
export function restartableStore(env: HaEnv) {
  let current: HranaServer | undefined = env.store;
  const path = join(env.dir, "store", "kubemeta.db");
  cleanups.push(() => current?.stop());
  return {
    up: () => current !== undefined,
    async stop() {
      await current?.stop();
      current = undefined;
    },
    start() {
      current ??= startHranaServer({ path, port: env.store.port, token: STORE_TOKEN });
    },
  };
}

/**
 * Replicas by index: `running[i]` the process of replica i while it runs, `processes` every one started. A replica
 * killed is started again once it can open the store (a replica that cannot exits 1 at start, as the README says,
 * and a pod's would be restarted by its kubelet): while the store is down or its own path to it cut, it waits.
 */
export function replicaSet(env: HaEnv, count: number, storeUp: () => boolean) {
  const running: Array<Replica | undefined> = Array.from({ length: count }, () => undefined);
  const processes: Replica[] = [];
  const exits: Array<{ identity: string; signal: string; code: number }> = [];
  let failedStarts = 0;
  const reachable = (i: number) => storeUp() && !env.storePaths[i]?.partitioned;

  async function start(i: number): Promise<Replica> {
    for (;;) {
      await waitFor(() => reachable(i), 120_000, `replica-${i}'s store to be reachable`);
      try {
        const replica = await env.start(i);
        processes.push(replica);
        running[i] = replica;
        return replica;
      } catch (error) {
        // The store went away during its start (another fault of the round): as a kubelet would, start it again.
        if (!/stream ended without/.test(String(error))) throw error;
        failedStarts++;
        await Bun.sleep(200);
      }
    }
  }

  /** The running replica that holds the Lease, if one does. */
  function leader(): number | undefined {
    const lease = env.server.get("Lease", "default", "kubemeta") as { spec: { holderIdentity?: string } } | undefined;
    const i = running.findIndex((r) => r !== undefined && r.identity === lease?.spec.holderIdentity);
    return i < 0 ? undefined : i;
  }

  /** Sends `signal` to replica i, waits for its exit, and starts it again. */
  async function restart(i: number, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    const replica = running[i];
    if (!replica) return;
    running[i] = undefined;
    replica.proc.kill(signal);
    exits.push({ identity: replica.identity, signal, code: await replica.proc.exited });
    await start(i);
  }

  return {
    running,
    processes,
    exits,
    start,
    leader,
    restart,
    failedStarts: () => failedStarts,
    alive: () => running.filter((r): r is Replica => r !== undefined),
  };
}
