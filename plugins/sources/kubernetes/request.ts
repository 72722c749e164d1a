/**
 * One API request as the reflectors send it: paid for from the request budget, cut off
 * when no byte arrives for the inactivity timeout (half-open connections), counted,
 * and turned into an `ApiError` when the server answers with a Status.
 */
import { parseRetryAfter, type Backoff } from "../../../protocol/retry.ts";
import type { Logger } from "../../../sdk/telemetry.ts";
import type { RequestBudget } from "./budget.ts";
import type { SourceMetrics } from "./telemetry.ts";
import type { KubeTransport } from "./transport.ts";

/** A Kubernetes `Status` failure, from an HTTP response or a watch ERROR event. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    /** From `Retry-After` or the Status' `details.retryAfterSeconds`. */
    readonly retryAfterMs?: number,
    /** `details.causes[].reason` of the Status. */
    readonly causes: string[] = [],
  ) {
    super(`${code} ${reason}: ${message}`);
    this.name = "ApiError";
  }

  /**
   * Our resourceVersion is one the server cannot serve: older than its history (410
   * Gone), or newer than anything it has seen (the store was restored, or holds another
   * cluster's versions). Either way only a relist helps, as in client-go's reflector.
   */
  get needsRelist(): boolean {
    return this.code === 410 || this.causes.includes("ResourceVersionTooLarge");
  }
}

/** No byte arrived for the inactivity timeout. */
export class InactivityError extends Error {
  constructor(timeoutMs: number) {
    super(`no data from the API server for ${timeoutMs} ms`);
    this.name = "InactivityError";
  }
}

export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
  details?: { retryAfterSeconds?: number; causes?: Array<{ reason?: string }> };
}

export function statusError(status: KubeStatus, httpStatus: number, retryAfterHeader?: string | null): ApiError {
  const code = typeof status.code === "number" && status.code > 0 ? status.code : httpStatus;
  const fromStatus = status.details?.retryAfterSeconds;
  const retryAfterMs = retryAfterHeader
    ? parseRetryAfter(retryAfterHeader)
    : typeof fromStatus === "number"
      ? parseRetryAfter(String(Math.ceil(fromStatus)))
      : undefined;
  const causes = (status.details?.causes ?? []).flatMap((cause) => (cause.reason ? [cause.reason] : []));
  return new ApiError(code, status.reason ?? "Unknown", status.message ?? "", retryAfterMs, causes);
}

export interface StreamHandlers {
  /** The server accepted the request (2xx, headers received). */
  onOpen?(): void;
  /** A chunk of the body; the inactivity clock stops while a returned promise is pending (backpressure). */
  onChunk(chunk: Uint8Array): void | Promise<void>;
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
  /** GETs and parses the whole body as JSON. */
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
    const watchdog = startWatchdog(inactivityTimeoutMs, () => request.abort(new InactivityError(inactivityTimeoutMs)));
    const rethrow = (err: unknown): never => {
      throw watchdog.fired ? new InactivityError(inactivityTimeoutMs) : err;
    };
    let complete = false;
    try {
      const response = await transport.get(path, request.signal).catch((err: unknown) => {
        metrics.requests.inc({ verb, resource, code: "error" });
        return rethrow(err);
      });
      metrics.requests.inc({ verb, resource, code: String(response.status) });
      if (!response.ok) throw await failure(response).catch(rethrow);
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
    const body = await response.text();
    let status: KubeStatus = { message: body.slice(0, 500) };
    try {
      status = JSON.parse(body) as KubeStatus;
    } catch {
      // Not a Status (a proxy's error page): keep the text as the message.
    }
    if (response.status === 401) reloadCredentials();
    return statusError(status, response.status, response.headers.get("retry-after"));
  }

  function reloadCredentials() {
    try {
      transport.reloadCredentials();
    } catch (err) {
      logger.warn("cannot reload the kubeconfig after a 401", { error: err });
    }
  }

  return {
    stream,
    async json<T>(request: RequestSpec, signal: AbortSignal): Promise<T> {
      const chunks: Uint8Array[] = [];
      await stream(request, signal, { onChunk: (chunk) => void chunks.push(chunk) });
      return JSON.parse(new TextDecoder().decode(Buffer.concat(chunks))) as T;
    },
  };
}

/**
 * Fires when no byte has arrived for `timeoutMs` outside pauses. One timer that re-arms
 * itself from the time of the last byte, rather than a timer reset on every chunk.
 */
function startWatchdog(timeoutMs: number, onTimeout: () => void) {
  let lastActivity = performance.now();
  let paused = false;
  let timer: Timer | undefined;
  const state = {
    fired: false,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      lastActivity = performance.now();
    },
    stop() {
      clearTimeout(timer);
    },
  };
  const check = () => {
    const idle = performance.now() - lastActivity;
    if (paused || idle < timeoutMs) {
      timer = setTimeout(check, paused ? timeoutMs : timeoutMs - idle);
      return;
    }
    state.fired = true;
    onTimeout();
  };
  timer = setTimeout(check, timeoutMs);
  return state;
}

/** Retry-After when the server sent one (429, and 503 from overloaded servers), else the backoff's next delay. */
export function retryDelay(err: unknown, backoff: Backoff): { delayMs: number; reason: string } {
  if (err instanceof ApiError && err.retryAfterMs !== undefined && (err.code === 429 || err.code >= 500)) {
    return { delayMs: err.retryAfterMs, reason: err.code === 429 ? "throttled" : "error" };
  }
  return { delayMs: backoff.next(), reason: err instanceof InactivityError ? "inactivity" : "error" };
}

/**
 * Waits for the core's backpressure or commit, but not past a stop: stop() must not
 * hang on a core that no longer drains. Rejects with the abort reason when stopped.
 */
export function unlessStopped(pending: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
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
