/**
 * Three replicas lose their leader twice in a row (kill -9 of the leader, then of the one that took over) under churn.
 * After each loss one of the survivors leads within the failover bound while the other keeps serving readers (ready
 * throughout); a client behind a Service resumes on a survivor; nothing committed by either dead leader is lost or
 * written again, and the last survivor's clients end with the cluster's state, with no RESET.
 */
import { afterEach, expect, test } from "bun:test";
import type { Update } from "../sdk/model.ts";
import { startChurn } from "../simulator/population.ts";
import { waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, type Consumer, consumeSse } from "./faults-cluster.ts";
import { type Replica, service, setupHa, TAKEOVER_MS } from "./ha-cluster.ts";
import { expectConverged } from "./ha-checks.ts";

afterEach(runCleanups);

const LEADING = "leading: this replica writes the store and runs the sources";

test("three replicas lose the leader twice (kill -9): a survivor leads each time, nothing lost or reset", async () => {
  const env = await setupHa({ replicas: 3 });
  cleanups.push(env.destroy);
  const first = await env.start(0);
  await env.leading(first);
  const alive = [first, ...(await Promise.all([env.start(1), env.start(2)]))];
  for (const replica of alive) await env.ready(replica);
  // A client of each replica behind the Service: while its replica lives it stays there, then it moves to a survivor.
  const consumers: Consumer[] = [];
  for (const home of [...alive]) {
    const front = service(() => (alive.includes(home) ? [home] : alive));
    cleanups.push(front.stop);
    consumers.push(await consumeSse(front.url));
  }
  const churn = startChurn(env.server, { perSecond: 40, seed: 31 });
  cleanups.push(async () => churn.stop());

  /** kill -9 of the leader once it has committed some of the churn; returns the survivor that leads next. */
  const loseLeader = async (leader: Replica): Promise<{ next: Replica; committed: Update[] }> => {
    const committedBefore = (await env.allUpdates()).length;
    await waitFor(
      async () => (await env.allUpdates()).length > committedBefore + 20,
      10_000,
      `${leader.identity} to commit churn`,
    );
    leader.proc.kill("SIGKILL");
    await leader.proc.exited;
    alive.splice(alive.indexOf(leader), 1);
    const killedAt = performance.now();
    // What the dead leader committed, read once nobody writes: the survivors must keep all of it as it is.
    const committed = await env.allUpdates();
    const readiness = new Map<Replica, number[]>(alive.map((replica) => [replica, []]));
    const next = await waitFor(
      async () => {
        for (const replica of alive) readiness.get(replica)!.push((await fetch(`${replica.url}/readyz`)).status);
        return alive.find((replica) => replica.out.lines(LEADING).length > 0);
      },
      TAKEOVER_MS,
      "a survivor to lead",
    );
    console.log(
      `${next.identity} leads ${(performance.now() - killedAt).toFixed(0)} ms after the kill of ${leader.identity}`,
    );
    // The survivor that does not lead reads the store throughout: ready, as readers behind the Service need.
    for (const replica of alive) if (replica !== next) expect(new Set(readiness.get(replica))).toEqual(new Set([200]));
    await env.ready(next);
    const leaders = await Promise.all(alive.map((replica) => env.metric(replica.url, "kubemeta_ha_leader")));
    expect(leaders).toEqual(alive.map((replica) => (replica === next ? 1 : 0)));
    return { next, committed };
  };

  const second = await loseLeader(first);
  const third = await loseLeader(second.next);
  churn.stop();

  const last = third.next;
  const updates = await expectConverged(env, last, consumers);
  // Neither dead leader's commits were lost or written again: the log begins with each as it was.
  for (const { committed } of [second, third]) expect(updates.slice(0, committed.length)).toEqual(committed);
  expect(await env.metric(last.url, "kubemeta_ha_terms_total")).toBe(1);
}, 90_000);
