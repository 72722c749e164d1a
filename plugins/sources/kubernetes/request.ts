/**
 * One API request as the reflectors send it: paid for from the request budget, cut off when no byte arrives for the
 * inactivity timeout (half-open connections: inactivity.ts), counted, and turned into an `ApiError` (kube/status.ts)
 * when the server answers with a Status.
 */
import { ApiError, responseError } from "../../../kube/status.ts";
import type { Backoff } from "../../../protocol/retry.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import type { RequestBudget } from "./budget.ts";
import type { SourceMetrics } from "./telemetry.ts";
import { parseSkimmed } from "./skim.ts";
import { OversizedError } from "./lines.ts";
import { retryLog } from "./readiness.ts";
import { InactivityError, startWatchdog, type BookmarkCadence } from "./inactivity.ts";
import { CredentialsError, type KubeTransport, unansweredCode } from "../../../kube/transport.ts";

/**
 * A 2xx whose body is not JSON: a proxy's login or error page (text/html), or a server that ignores `Accept` (protobuf,
 * CBOR). Said as such, rather than as the JSON.parse error of its first byte.
 */
export class NotJsonError extends Error {
  constructor(status: number, type: string) {
    // The type as sent, cut short: it is the server's, and the message goes to /readyz and the log.
    const said = type.replace(/[^\x20-\x7e]/g, "?").slice(0, 100);
    super(
      `the API server answered ${status} with Content-Type ${said}, not JSON ` +
        "(a proxy's page, or a server that ignores Accept: application/json)",
    );
    this.name = "NotJsonError";
  }
}

/** application/json (what kube-apiserver writes, a watch too), with parameters or not, and any +json type. */
const JSON_TYPE = /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * The longest answer read whole (a LIST page, a discovery document), twice the longest watch line: a page of the
 * default 500 items is tens of MiB at most on a real cluster (a pod is tens of KiB), and it is held two or three
 * times over while decoded and parsed, in a container whose memory limit is 1.5 GiB (deploy/).
 */
const MAX_ANSWER_BYTES = 256 << 20;

export interface StreamHandlers {
  /** The server accepted the request (2xx, headers received). */
  onOpen?(): void;
  /** A chunk of the body; the inactivity clock stops while a returned promise is pending (backpressure). */
  onChunk(chunk: Uint8Array): void | Promise<void>;
  /** A watch's bookmark cadence, which shortens its inactivity timeout once observed. */
  cadence?: BookmarkCadence;
}

export interface RequestSpec {
  /** `discovery`: the APIResourceList of the resource's group version. */
  verb: "list" | "watch" | "discovery";
  /** For metrics: `pods`, `deployments`… */
  resource: string;
  /** Path and query. */
  path: string;
  /**
   * The next page of a list under way. Not charged to the budget: the list paid when it
   * started, and charging every page would make a 150,000-pod list take a minute at 5 qps.
   */
  continuation?: boolean;
}

export interface Requester {
  /** GETs and streams the body; resolves at its end. Throws ApiError, InactivityError or a network error. */
  stream(request: RequestSpec, signal: AbortSignal, handlers: StreamHandlers): Promise<void>;
  /** GETs and parses the whole body as JSON (a LIST page without its items' metadata.managedFields). */
  json<T>(request: RequestSpec, signal: AbortSignal): Promise<T>;
}

export interface RequesterOptions {
  transport: KubeTransport;
  budget: RequestBudget;
  metrics: SourceMetrics;
  logger: Logger;
  inactivityTimeoutMs: number;
}

export function createRequester(options: RequesterOptions): Requester {
  const { transport, budget, metrics, logger, inactivityTimeoutMs } = options;

  async function stream(
    { verb, resource, path, continuation }: RequestSpec,
    signal: AbortSignal,
    handlers: StreamHandlers,
  ) {
    if (!continuation) await budget.take(signal);
    signal.throwIfAborted();
    const request = new AbortController();
    const forwardStop = () => request.abort(signal.reason);
    signal.addEventListener("abort", forwardStop, { once: true });
    // Waiting for the headers counts too: a half-open connection never sends them.
    const { cadence } = handlers;
    const timeoutMs = cadence ? () => cadence.timeoutMs(inactivityTimeoutMs) : () => inactivityTimeoutMs;
    const watchdog = startWatchdog(timeoutMs, (firedAfterMs) => request.abort(new InactivityError(firedAfterMs)));
    const rethrow = (err: unknown): never => {
      throw watchdog.firedAfterMs !== undefined ? new InactivityError(watchdog.firedAfterMs) : err;
    };
    let complete = false;
    try {
      const response = await transport.get(path, request.signal).catch((err: unknown) => {
        metrics.requests.inc({ verb, resource, code: unansweredCode(err) });
        // A request that never left (no credentials) is not the API server's silence: no watchdog's to say so.
        if (err instanceof CredentialsError) throw err;
        return rethrow(err);
      });
      metrics.requests.inc({ verb, resource, code: String(response.status) });
      if (!response.ok) throw await failure(response).catch(rethrow);
      const type = response.headers.get("content-type");
      if (type !== null && !JSON_TYPE.test(type)) throw new NotJsonError(response.status, type);
      handlers.onOpen?.();
      const reader = response.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read().catch(rethrow);
        if (done) break;
        watchdog.pause();
        const pending = handlers.onChunk(value);
        if (pending) await pending;
        watchdog.resume();
      }
      complete = true;
    } finally {
      watchdog.stop();
      signal.removeEventListener("abort", forwardStop);
      // Closes the connection when the body was left unread (an error, a handler threw);
      // a complete response leaves it to the keep-alive pool.
      if (!complete) request.abort();
    }
  }

  async function failure(response: Response): Promise<ApiError> {
    if (response.status === 401) reloadCredentials(response);
    return responseError(response);
  }

  // Each 401 reloads, so while a file the kubeconfig names stays unreadable every refused request of every resource
  // fails its reload: logged as the retries are, lest a warning per request flood the log for as long.
  const reloads = retryLog(logger, "cannot reload the kubeconfig after a 401", "the kubeconfig reloads again");
  function reloadCredentials(refused: Response) {
    try {
      transport.reloadCredentials(refused);
      reloads.succeeded();
    } catch (err) {
      reloads.failed(err, {});
    }
  }

  return {
    stream,
    async json<T>(request: RequestSpec, signal: AbortSignal): Promise<T> {
      const chunks: Uint8Array[] = [];
      let received = 0;
      await stream(request, signal, {
        onChunk(chunk) {
          received += chunk.length;
          if (received > MAX_ANSWER_BYTES) throw oversized(request);
          chunks.push(chunk);
        },
      });
      const text = new TextDecoder().decode(Buffer.concat(chunks));
      // A LIST page's items go to the core, which drops their metadata.managedFields (skim.ts says why).
      return (request.verb === "list" ? parseSkimmed(text) : JSON.parse(text)) as T;
    },
  };
}

function oversized({ verb, resource }: RequestSpec): OversizedError {
  const what = verb === "list" ? `a LIST page of ${resource}` : `the ${verb} answer for ${resource}`;
  const hint = verb === "list" ? " (if its objects are that large, lower pageSize)" : "";
  return new OversizedError(`${what} ran past ${MAX_ANSWER_BYTES >> 20} MiB: given up${hint}`);
}

/**
 * Retry-After when the server sent one (429, and 503 from overloaded servers), else the backoff's next delay. A 429 is
 * `throttled` with or without one: the server shed the request, whatever it said of when to come back.
 */
export function retryDelay(err: unknown, backoff: Backoff): { delayMs: number; reason: string } {
  const throttled = err instanceof ApiError && err.code === 429;
  if (err instanceof ApiError && err.retryAfterMs !== undefined && (throttled || err.code >= 500)) {
    return { delayMs: err.retryAfterMs, reason: throttled ? "throttled" : "error" };
  }
  const reason = throttled
    ? "throttled"
    : err instanceof InactivityError
      ? "inactivity"
      : err instanceof OversizedError
        ? "oversized"
        : "error";
  return { delayMs: backoff.next(), reason };
}

/**
 * Waits for the core's backpressure or commit, but not past a stop: stop() must not
 * hang on a core that no longer drains. Rejects with the abort reason when stopped.
 */
export function unlessStopped(pending: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    // Its outcome is no one's now; its rejection (one unlessStopped inside it, say) must not count as unhandled.
    pending.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
