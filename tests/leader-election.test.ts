/**
 * Leader election (kube/election.ts) against the test API server over real HTTPS: what the replicas of kubemeta
 * rely on to have one writer. One leader at a time; a released Lease is taken over at the standby's next try; a
 * crashed leader's only after the lease duration has passed since its last renewal, never before, and at the first
 * try after that; a leader that finds the Lease taken stops at once; two contenders writing from the same
 * resourceVersion cannot both win. Durations are short (lease 1 s, renew deadline 0.7 s, retry 0.1 s); every wait
 * has a deadline, and what happens when is told by the requests each replica makes, not by the clock.
 */
import { describe, expect, test } from "bun:test";
import { waitFor } from "./apiserver-client.ts";
import type { Elector } from "../kube/election.ts";
import type { Lease } from "../kube/lease.ts";
import { electionSuite, LEASE_MS, NAMESPACE, never, RENEW_DEADLINE_MS, RETRY_MS } from "./leader-election-fixtures.ts";

const suite = electionSuite();
const { logs, electors, transport, elector } = suite;

const leaseOf = (name: string) => suite.server.get("Lease", NAMESPACE, name) as Lease | undefined;

/** A contender's reads of the Lease, as they are answered: when (performance.now()), and the renewTime read. */
function recordedReads() {
  const reads: { at: number; renewTime?: string }[] = [];
  const { transport: via } = transport(async (method, response) => {
    if (method !== "GET" || !response.ok) return;
    const lease = (await response.clone().json()) as Lease;
    reads.push({ at: performance.now(), renewTime: lease.spec.renewTime });
  });
  return { reads, via };
}
const micros = (time: string | undefined) => Date.parse(time ?? "");

/** Starts every elector's acquire(); resolves with the first to lead, and the promises of all. */
async function race(contenders: Elector[]) {
  const acquiring = contenders.map((contender) => contender.acquire(never));
  const first = await Promise.race(acquiring.map((promise, index) => promise.then(() => index)));
  return { winner: contenders[first]!, signal: await acquiring[first]!, acquiring };
}

describe("leader election", () => {
  test("of three contenders exactly one leads; the Lease names it, and the leader keeps renewing", async () => {
    const contenders = ["a", "b", "c"].map((identity) => elector("one-of-three", identity));
    const { winner, signal } = await race(contenders);
    const identity = ["a", "b", "c"][contenders.indexOf(winner)]!;
    const first = leaseOf("one-of-three")!;
    expect(first.spec).toMatchObject({ holderIdentity: identity, leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(first.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(first.spec.acquireTime).toBe(first.spec.renewTime!);
    // Over several lease durations: always the one leader, renewing, and the standbys never taking over.
    const until = Date.now() + 2 * LEASE_MS;
    let renewals = 0;
    let last = first.spec.renewTime;
    while (Date.now() < until) {
      expect(contenders.filter((contender) => contender.leading)).toEqual([winner]);
      const current = leaseOf("one-of-three")!;
      expect(current.spec).toMatchObject({ holderIdentity: identity, leaseTransitions: 0 });
      expect(current.spec.acquireTime).toBe(first.spec.acquireTime!);
      if (current.spec.renewTime !== last) renewals++;
      last = current.spec.renewTime;
      await Bun.sleep(RETRY_MS / 2);
    }
    expect(renewals).toBeGreaterThanOrEqual(8);
    expect(signal.aborted).toBe(false);
  });

  test("a leader paused past its renew deadline no longer holds the Lease at once, before its timers run", async () => {
    const leader = elector("paused", "p");
    const signal = await leader.acquire(never);
    await waitFor(() => leader.holds(), 5_000, "the first write");
    expect(leader.holds()).toBe(true);
    // A pause (SIGSTOP, a stalled VM) as the event loop sees it: nothing of the elector's ran meanwhile.
    const pausedUntil = performance.now() + RENEW_DEADLINE_MS + 100;
    while (performance.now() < pausedUntil);
    expect([leader.holds(), leader.leading, signal.aborted]).toEqual([false, true, false]);
    await waitFor(() => signal.aborted || leader.holds(), 5_000, "the term to end or the Lease to be renewed");
  });

  test("release: the leader's signal aborts, the Lease is left empty, a standby leads at its next try", async () => {
    const { reads, via } = recordedReads();
    const [a, b] = [elector("handover", "a"), elector("handover", "b", via)];
    const signal = await a.acquire(never);
    const standby = b.acquire(never);
    // b has seen a's Lease: without a release it would wait out the lease duration, reading it every try.
    await waitFor(() => reads.length >= 1, 5_000, "the standby to read a's Lease");
    await a.release();
    const readsBefore = reads.length;
    expect(signal.aborted).toBe(true);
    expect(a.leading).toBe(false);
    await standby;
    expect(b.leading).toBe(true);
    // Taken at the first read after the release (a read answered just before it may come in after it too).
    expect(reads.length - readsBefore).toBeLessThanOrEqual(2);
    expect(leaseOf("handover")!.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.release();
    // client-go's release: nobody holds it, for 1 s, transitions kept.
    expect(leaseOf("handover")!.spec).toMatchObject({
      holderIdentity: "",
      leaseDurationSeconds: 1,
      leaseTransitions: 1,
    });
    await a.release(); // twice, and after a release by the other: harmless
  });

  test("a leader that crashes is replaced only once the lease duration has passed since its last renewal", async () => {
    const link = transport();
    const crashing = elector("crash", "a", link.transport);
    const lost = await crashing.acquire(never);
    const { reads, via } = recordedReads();
    const standby = elector("crash", "b", via);
    const taking = standby.acquire(never);
    await waitFor(() => reads.length >= 1, 5_000, "the standby to read a's Lease");
    link.cut();
    // It stops leading once renewals have failed for the renew deadline, before anyone may take over.
    await waitFor(() => lost.aborted, RETRY_MS + RENEW_DEADLINE_MS + 500, "the crashed leader to step down");
    expect(String(lost.reason)).toContain("no renewal succeeded");
    const last = leaseOf("crash")!;
    expect(last.spec.holderIdentity).toBe("a");
    expect(standby.leading).toBe(false);
    await taking;
    const taken = leaseOf("crash")!;
    expect(taken.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    const afterMs = micros(taken.spec.acquireTime) - micros(last.spec.renewTime);
    expect(afterMs).toBeGreaterThanOrEqual(LEASE_MS);
    // And then at its first try: b times the Lease from its first read of the last renewal (its own clock), and of
    // its reads after that plus the lease duration, the one that took it is the first (or, a moment apart, the next).
    const seen = reads.find((read) => read.renewTime === last.spec.renewTime)!;
    expect(seen).toBeDefined();
    expect(reads.filter((read) => read.at > seen.at + LEASE_MS).length).toBeLessThanOrEqual(2);
  });

  test("a standby's Lease read that hears nothing is given up at the renew deadline; it takes over", async () => {
    const link = transport();
    const crashing = elector("unanswered", "a", link.transport);
    await crashing.acquire(never);
    const standbyLink = transport();
    standbyLink.hangNextRead();
    const standby = elector("unanswered", "b", standbyLink.transport);
    const taking = standby.acquire(never);
    link.cut();
    // Its read given up (renew deadline), it reads again, and takes the Lease once it has expired by its own clock.
    await waitFor(() => standby.leading, RENEW_DEADLINE_MS + 2 * LEASE_MS + 2_000, "the standby to lead");
    await taking;
    expect(leaseOf("unanswered")!.spec.holderIdentity).toBe("b");
    const given = logs
      .map((line) => JSON.parse(line))
      .find((line) => line.msg === "cannot acquire the Lease" && String(line.lease).includes("/unanswered"));
    expect(given?.error).toMatchObject({ name: "TimeoutError", message: `no answer in ${RENEW_DEADLINE_MS} ms` });
  });

  test("a leader whose Lease someone else writes stops leading at its next renewal, and leaves it be", async () => {
    const leader = elector("taken", "a");
    const signal = await leader.acquire(never);
    suite.server.patch("Lease", NAMESPACE, "taken", (lease) => {
      Object.assign(lease.spec as object, { holderIdentity: "intruder", leaseTransitions: 1 });
    });
    const taken = suite.server.resourceVersion();
    await waitFor(() => signal.aborted, 2 * RETRY_MS + 500, "the leader to notice");
    expect(leader.leading).toBe(false);
    expect(String(signal.reason)).toContain('held by "intruder"');
    await leader.release();
    expect(suite.server.resourceVersion()).toBe(taken);
    expect(leaseOf("taken")!.spec.holderIdentity).toBe("intruder");
  });

  for (const [what, start] of [
    ["create (409 AlreadyExists)", "POST"],
    ["replace of a released Lease (409 Conflict)", "PUT"],
  ] as const) {
    test(`two contenders racing on the same ${what}: one wins, the other reads again and waits`, async () => {
      const name = `race-${start.toLowerCase()}`;
      if (start === "PUT") {
        suite.server.create({
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace: NAMESPACE },
          spec: { holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 3 },
        });
      }
      // Both have read the Lease before either writes: the writes carry the same version.
      const read = Promise.withResolvers<void>();
      let reads = 0;
      const statuses: Record<string, number[]> = { a: [], b: [] };
      const gated = (identity: "a" | "b") =>
        transport(async (method, response) => {
          if (method === "GET" && ++reads === 2) read.resolve();
          if (method === "GET") await read.promise;
          statuses[identity]!.push(response.status);
        }).transport;
      const { winner, acquiring } = await race([elector(name, "a", gated("a")), elector(name, "b", gated("b"))]);
      const loser = winner === electors.at(-2) ? "b" : "a";
      // The loser's write was answered 409 (it may arrive just after the winner's 2xx).
      await waitFor(() => statuses[loser]!.includes(409), 1000, "the losing write's 409");
      expect(winner.leading).toBe(true);
      expect(electors.at(loser === "a" ? -2 : -1)!.leading).toBe(false);
      expect(leaseOf(name)!.spec).toMatchObject({
        holderIdentity: loser === "a" ? "b" : "a",
        leaseTransitions: start === "PUT" ? 4 : 0,
      });
      // After its 409 the loser reads the Lease again (200) rather than writing blind, and again a try later: it
      // still waits, and the winner still leads alone.
      const readsAfter409 = () => statuses[loser]!.slice(statuses[loser]!.indexOf(409) + 1).filter((s) => s === 200);
      await waitFor(() => readsAfter409().length >= 2, 5_000, "the loser to read the Lease twice after its 409");
      expect(electors.slice(-2).filter((contender) => contender.leading)).toEqual([winner]);
      await winner.release();
      await Promise.all(acquiring);
    });
  }

  test("acquire rejects with an AbortError when its signal aborts first, and works again afterwards", async () => {
    const holder = elector("abort", "a");
    await holder.acquire(never);
    const { reads, via } = recordedReads();
    const waiting = elector("abort", "b", via);
    const stop = new AbortController();
    const attempt = waiting.acquire(stop.signal);
    // Aborted while it waits between tries, having found the Lease held.
    await waitFor(() => reads.length >= 1, 5_000, "the contender to read the Lease");
    stop.abort();
    const error = await attempt.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe("AbortError");
    await waiting.release(); // without ever leading: nothing to write
    expect(leaseOf("abort")!.spec.holderIdentity).toBe("a");
    const again = waiting.acquire(never);
    await holder.release();
    await again;
    expect(waiting.leading).toBe(true);
  });
});
