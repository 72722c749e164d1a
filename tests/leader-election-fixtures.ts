/**
 * What the leader election tests share (kube/election.ts against the test API server over real HTTPS): the server,
 * kubeconfigs that work, name a host its certificate lacks, or carry a revoked token; transports a test can cut,
 * misname, revoke or make hang; electors of short durations whose lines are kept, and released after each test.
 */
import { afterAll, afterEach, beforeAll, expect } from "bun:test";
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { createElector, type Elector } from "../kube/election.ts";
import { createTransport, type KubeTransport } from "../kube/transport.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";

export const NAMESPACE = "kube-system";
export const LEASE_MS = 1000;
export const RENEW_DEADLINE_MS = 700;
export const RETRY_MS = 100;
/** A signal that never aborts. */
export const never = new AbortController().signal;

/** Registers the calling test file's hooks (a shared module's own would apply to the first file only). */
export function electionSuite() {
  let server: TestApiServer;
  let kc: KubeConfig;
  /** The same, expecting a name the server's certificate lacks: Bun's fetch fails, naming the request's URL. */
  let misnamed: KubeConfig;
  /** The same with a token the server does not accept (revoked): every request answered 401. */
  let revoked: KubeConfig;
  const logs: string[] = [];
  const electors: Elector[] = [];

  beforeAll(async () => {
    server = await startTestApiServer();
    kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig("token"));
    misnamed = new KubeConfig();
    misnamed.loadFromString(
      server.kubeconfig("token").replace("server: ", "tls-server-name: elsewhere.example.com\n    server: "),
    );
    revoked = new KubeConfig();
    revoked.loadFromString(server.kubeconfig("token").replace(server.token, "revoked"));
  });
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((elector) => elector.release()));
  });
  afterAll(async () => {
    await server.stop();
    // Acquisitions, losses and failures are logged, and no line carries the credentials.
    expect(logs.some((line) => line.includes("acquired the Lease"))).toBe(true);
    expect(logs.some((line) => line.includes("lost the Lease") && line.includes('"reason"'))).toBe(true);
    expect(logs.filter((line) => line.includes(server.token))).toEqual([]);
  });

  /**
   * A transport that can be cut (a crashed or partitioned replica), or misnamed (each request then failing in Bun's
   * fetch), whose next read can hear nothing (a connection black-holed), and that sees every response.
   */
  function transport(onResponse?: (method: string, response: Response) => Promise<void> | void) {
    let inner = createTransport(kc, () => kc);
    let cut = false;
    let hangNext = false;
    const refused = () => Promise.reject(new TypeError("connection refused (cut by the test)"));
    // As fetch over a connection that hears nothing: no answer, no error, until its signal aborts.
    const unanswered = (signal: AbortSignal) =>
      new Promise<Response>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
      );
    const read = (path: string, signal: AbortSignal) => {
      if (!hangNext) return through("GET", inner.get(path, signal));
      hangNext = false;
      return unanswered(signal);
    };
    const through = async (method: string, sent: Promise<Response>) => {
      const response = await sent;
      await onResponse?.(method, response);
      return response;
    };
    const wrapped: KubeTransport = {
      get server() {
        return inner.server;
      },
      get: (path, signal) => (cut ? refused() : read(path, signal)),
      request: (method, path, init) => (cut ? refused() : through(method, inner.request(method, path, init))),
      reloadCredentials: () => inner.reloadCredentials(),
      close: () => inner.close(),
    };
    return {
      transport: wrapped,
      cut() {
        cut = true;
      },
      misname() {
        inner = createTransport(misnamed, () => misnamed);
      },
      revoke() {
        inner = createTransport(revoked, () => revoked);
      },
      restore() {
        inner = createTransport(kc, () => kc);
      },
      hangNextRead() {
        hangNext = true;
      },
    };
  }

  function elector(name: string, identity: string, via: KubeTransport = transport().transport): Elector {
    const logger = createLogger({ level: "debug", write: (line) => void logs.push(line) });
    const created = createElector({
      transport: via,
      namespace: NAMESPACE,
      name,
      identity,
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
      retryPeriodMs: RETRY_MS,
      logger: logger.child({ identity }),
      requests: createMetrics().counter("kubemeta_ha_lease_requests_total", "The Lease's requests."),
    });
    electors.push(created);
    return created;
  }

  return {
    get server() {
      return server;
    },
    logs,
    electors,
    transport,
    elector,
  };
}
