/**
 * What the leader election logs when its requests fail (kube/election.ts against the test API server over real
 * HTTPS): said as the kubernetes source says it, and each run of failures as an outage (the first, each new cause at
 * once, its end), a lost term's acquires included.
 */
import { describe, expect, test } from "bun:test";
import { waitFor } from "./apiserver-client.ts";
import { electionSuite, never, RENEW_DEADLINE_MS, RETRY_MS } from "./leader-election-fixtures.ts";

const suite = electionSuite();
const { logs, transport, elector } = suite;

describe("leader election's log", () => {
  test("a failed request is logged as the kubernetes source says it: without Bun's request URL and hint", async () => {
    const link = transport();
    const leader = elector("misnamed", "misnamed-leader", link.transport);
    const lost = await leader.acquire(never);
    link.misname();
    await waitFor(() => lost.aborted, RETRY_MS + RENEW_DEADLINE_MS + 2_000, "the leader to step down");
    const contender = transport();
    contender.misname();
    const stop = new AbortController();
    const acquiring = elector("misnamed", "misnamed-contender", contender.transport).acquire(stop.signal);
    const failures = () =>
      logs
        .map((line) => JSON.parse(line))
        .filter((line) => line.identity?.startsWith("misnamed-") && /^(cannot|lost)/.test(line.msg));
    const messages = () => new Set(failures().map((line) => line.msg));
    const last = ["cannot release the Lease; a standby takes it over once it expires", "cannot acquire the Lease"];
    await waitFor(() => last.every((msg) => messages().has(msg)), 5_000, "the release's and the contender's failures");
    stop.abort();
    await acquiring.catch(() => {});
    const said = `ERR_TLS_CERT_ALTNAME_INVALID fetching ${suite.server.url}`;
    const reason = `no renewal succeeded for ${RENEW_DEADLINE_MS} ms: ${said}`;
    expect(String(lost.reason)).toBe(`Error: lost the Lease: ${reason}`);
    expect(messages()).toEqual(
      new Set([
        "cannot renew the Lease",
        "cannot renew the Lease from the version last written; reading it",
        "lost the Lease; no longer leading",
        ...last,
      ]),
    );
    for (const line of failures()) {
      if (line.msg.startsWith("lost")) expect(line.reason).toBe(reason);
      else expect(line.error).toEqual({ name: "TypeError", message: said, code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    }
  });

  test("after a lost term each run of failures is said: the first, each new cause at once, and its end", async () => {
    const link = transport();
    const leader = elector("revoked", "revoked", link.transport);
    const lost = await leader.acquire(never);
    const lines = () =>
      logs
        .map((line) => JSON.parse(line))
        .filter((line) => line.identity === "revoked" && line.level !== "debug")
        .map(({ level, msg, error, failedAttempts }) => ({ level, msg, code: error?.code, failedAttempts }));
    const said = (msg: string, code?: string | number) => () =>
      lines().some((line) => line.msg === msg && line.code === code);
    const tls = "ERR_TLS_CERT_ALTNAME_INVALID";
    // Renewals failing on TLS, then, the term lost, acquires refused: 401, as with a token revoked.
    link.misname();
    await waitFor(() => lost.aborted, RETRY_MS + RENEW_DEADLINE_MS + 2_000, "the leader to step down");
    await waitFor(said("cannot release the Lease; a standby takes it over once it expires", tls));
    link.revoke();
    const again = leader.acquire(never);
    await waitFor(said("cannot acquire the Lease", 401), 5_000, "the first refused acquire, a warning");
    // Another cause in the same run: said at once.
    link.misname();
    await waitFor(said("cannot acquire the Lease", tls), 5_000, "the new cause");
    link.restore();
    await again;
    expect(lines().map(({ level, msg, code }) => ({ level, msg, code }))).toEqual([
      { level: "info", msg: "trying to acquire the Lease", code: undefined },
      { level: "info", msg: "acquired the Lease; leading", code: undefined },
      { level: "warn", msg: "cannot renew the Lease", code: tls },
      { level: "warn", msg: "lost the Lease; no longer leading", code: undefined },
      { level: "warn", msg: "cannot release the Lease; a standby takes it over once it expires", code: tls },
      { level: "info", msg: "trying to acquire the Lease", code: undefined },
      { level: "warn", msg: "cannot acquire the Lease", code: 401 },
      { level: "warn", msg: "cannot acquire the Lease", code: tls },
      { level: "info", msg: "reached the Lease after retrying", code: undefined },
      { level: "info", msg: "acquired the Lease; leading", code: undefined },
    ]);
    expect(lines().at(-2)!.failedAttempts).toBeGreaterThanOrEqual(2);
  });
});
