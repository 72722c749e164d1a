/**
 * One coordination.k8s.io/v1 Lease, the lock of leader election (election.ts): read it, create it, replace it
 * from the version read. The API server refuses a replace from a stale resourceVersion, and a create of a name
 * that exists, with 409: that refusal is what lets only one contender win.
 */
import type { Counter } from "../sdk/telemetry.ts";
import { leadingText } from "../protocol/leading-text.ts";
import { ApiError, responseError } from "./status.ts";
import { type KubeTransport, unansweredCode } from "./transport.ts";

/** coordination/v1 LeaseSpec, the fields leader election uses. */
export interface LeaseSpec {
  /** Who holds the Lease; empty or absent: nobody. */
  holderIdentity?: string;
  /** How long after the holder's last renewal (as each contender observes it) the Lease may be taken. */
  leaseDurationSeconds?: number;
  /** MicroTime (see `microTime`) when the current holder acquired the Lease. */
  acquireTime?: string;
  /** MicroTime of the holder's last renewal. */
  renewTime?: string;
  /** How many times the Lease changed holders. */
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: {
    name: string;
    namespace: string;
    resourceVersion: string;
    uid?: string;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  spec: LeaseSpec;
}

/** metav1.MicroTime as the API server writes it, "2006-01-02T15:04:05.000000Z" (a Date has milliseconds). */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/Z$/, "000Z");
}

/** A 409: a create found the Lease existing (AlreadyExists), or a replace came from a stale version (Conflict). */
export function isConflict(error: unknown): error is ApiError {
  return error instanceof ApiError && error.code === 409;
}

export interface LeaseClient {
  /** `namespace/name`, for logs. */
  readonly describe: string;
  /** The Lease, or undefined when it does not exist. Other failures throw an ApiError or a network error. */
  get(signal: AbortSignal): Promise<Lease | undefined>;
  /**
   * Creates the Lease with `annotations`; throws an ApiError with code 409 (`isConflict`) when it exists.
   */
  create(spec: LeaseSpec, signal: AbortSignal, annotations?: Record<string, string>): Promise<Lease>;
  /**
   * Replaces the spec of `read`, the Lease as last read or written, on condition that its resourceVersion is still
   * the current one; throws an ApiError with code 409 (`isConflict`) when someone wrote it since. `annotations` are
   * set beside those the Lease has: other tools' stay.
   */
  update(read: Lease, spec: LeaseSpec, signal: AbortSignal, annotations?: Record<string, string>): Promise<Lease>;
}

/**
 * `requests` counts each request `{verb, code}`: code the HTTP status, `error` when no answer came (none within the
 * deadline included), `credentials` when none could be obtained and it never left. One given up because its caller
 * stops is not counted: no failure of the API server's, and a rollout would count one on every replica.
 */
/** A Lease is well under a KiB with kubemeta's annotations. */
const MAX_LEASE_BYTES = 1024 * 1024;

export function createLeaseClient(
  transport: KubeTransport,
  namespace: string,
  name: string,
  requests: Counter,
): LeaseClient {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const path = `${collection}/${encodeURIComponent(name)}`;

  /** `verb` as the API server's audit log names it (and the source's `kubemeta_source_requests_total`). */
  async function send(verb: "get" | "create" | "update", signal: AbortSignal, sending: () => Promise<Response>) {
    try {
      const response = await sending();
      requests.inc({ verb, code: String(response.status) });
      return response;
    } catch (error) {
      if (!stopped(signal)) requests.inc({ verb, code: unansweredCode(error) });
      throw error;
    }
  }

  async function lease(response: Response): Promise<Lease> {
    if (response.ok) {
      // Read to a bound: an answer no API server gives (a proxy's download, a body that never ends) would otherwise
      // fill memory, each renewal, until the process is killed.
      const text = await leadingText(response.body, MAX_LEASE_BYTES + 1);
      if (Buffer.byteLength(text) > MAX_LEASE_BYTES) throw new Error("the Lease's answer ran past 1 MiB: given up");
      return JSON.parse(text) as Lease;
    }
    if (response.status === 401) {
      // A rotated token or renewed certificate: the next request goes out with the new one.
      try {
        transport.reloadCredentials(response);
      } catch {
        // The kubeconfig cannot be read right now; the 401 below says what the server said.
      }
    }
    throw await responseError(response);
  }

  return {
    describe: `${namespace}/${name}`,
    async get(signal) {
      const response = await send("get", signal, () => transport.get(path, signal));
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      return lease(response);
    },
    async create(spec, signal, annotations) {
      const metadata = { name, namespace, ...(annotations ? { annotations } : {}) };
      const body = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata, spec };
      return lease(await send("create", signal, () => transport.request("POST", collection, { body, signal })));
    },
    async update(read, spec, signal, annotations) {
      const metadata = annotations
        ? { ...read.metadata, annotations: { ...read.metadata.annotations, ...annotations } }
        : read.metadata;
      const body: Lease = { ...read, metadata, spec };
      return lease(await send("update", signal, () => transport.request("PUT", path, { body, signal })));
    },
  };
}

/** Aborted by its caller's stop, not by a deadline (a TimeoutError: the API server did not answer in time). */
function stopped(signal: AbortSignal): boolean {
  const reason: unknown = signal.reason;
  return signal.aborted && !(reason instanceof DOMException && reason.name === "TimeoutError");
}
