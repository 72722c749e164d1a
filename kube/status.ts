/**
 * Kubernetes `Status` failures as errors, one type for every client of the API server: the source's
 * requests and watch ERROR events, and the Lease client. The code, reason and message are the server's. And a failed
 * request to it as a log line's `error` field (loggedError), its message worded as protocol/error-text.ts words it.
 */
import { parseRetryAfter } from "../protocol/retry.ts";
import { causeOf } from "../sdk/telemetry.ts";
import { errorText } from "../protocol/error-text.ts";
import { leadingText } from "../protocol/leading-text.ts";

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
   * Our resourceVersion is older than the server's history (410 Gone). client-go reads the reason first (`Expired`,
   * `Gone`): a watch ERROR's Status without a code says so by its reason alone.
   */
  get expired(): boolean {
    return this.code === 410 || this.reason === "Expired" || this.reason === "Gone";
  }

  /**
   * Our resourceVersion is one the server cannot serve: expired, or newer than anything it has seen (the store was
   * restored, or holds another cluster's versions). Either way only a relist helps, as in client-go's reflector.
   */
  get needsRelist(): boolean {
    return this.expired || this.causes.includes("ResourceVersionTooLarge");
  }
}

export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
  details?: { retryAfterSeconds?: number; causes?: Array<{ reason?: string }> };
}

/**
 * The fields of `value` a Status has, those of the right type alone: a proxy's or a hostile server's Status may hold
 * anything (`causes` no list, a `details` nested deeper than a structured clone goes), which must neither throw
 * nor cross threads.
 */
export function statusOf(value: unknown): KubeStatus {
  const from = fieldsOf(value);
  const status: KubeStatus = {};
  if (typeof from.code === "number") status.code = from.code;
  if (typeof from.reason === "string") status.reason = from.reason;
  if (typeof from.message === "string") status.message = cut(from.message);
  const details = fieldsOf(from.details);
  const causes = Array.isArray(details.causes)
    ? details.causes.flatMap((cause) => {
        const { reason } = fieldsOf(cause);
        return typeof reason === "string" ? [{ reason }] : [];
      })
    : [];
  if (typeof details.retryAfterSeconds === "number" || causes.length > 0)
    status.details = {
      ...(typeof details.retryAfterSeconds === "number" ? { retryAfterSeconds: details.retryAfterSeconds } : {}),
      ...(causes.length > 0 ? { causes } : {}),
    };
  return status;
}

/**
 * The longest Status message kept: kube-apiserver's for a list or watch are a line; a hostile server's, in a watch line
 * of up to 128 MiB, would go whole into each log line and /readyz answer of every retry.
 */
const MAX_MESSAGE_CHARS = 1_000;

function cut(message: string): string {
  return message.length > MAX_MESSAGE_CHARS
    ? `${message.slice(0, MAX_MESSAGE_CHARS)}… (${message.length} characters)`
    : message;
}

function fieldsOf(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
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

/**
 * The most of a failed request's body read: a Status is a few hundred bytes, a proxy's error page some KiB. Past it, a
 * body that never ends (a hostile or broken server's) would be held until the process runs out of memory: what was
 * read is no Status, and its first characters are the message.
 */
const MAX_ERROR_BODY_BYTES = 1 << 20;

/** The error of a response that is not 2xx: its Status, or its text when something else answered (a proxy). */
export async function responseError(response: Response): Promise<ApiError> {
  // The rest is not read (the caller closes the connection).
  const body = await leadingText(response.body, MAX_ERROR_BODY_BYTES);
  let status: KubeStatus = { message: body.slice(0, 500) };
  try {
    status = statusOf(JSON.parse(body));
  } catch {
    // Not a Status (a proxy's error page): keep the text as the message.
  }
  return statusError(status, response.status, response.headers.get("retry-after"));
}

/** What kind of failure an error is, to tell a new cause from a repeat: its HTTP status, its code, or its name. */
export const causeOfRequest = (err: unknown): string => (err instanceof ApiError ? String(err.code) : causeOf(err));

/**
 * A log line's `error` field: the error's name, its message as errorText says it, and its code and cause. An Error,
 * which the logger writes as an object with those: anything else in an `error` field it writes as text.
 */
export function loggedError(err: unknown): Error {
  if (!(err instanceof Error)) return Object.assign(new Error(errorText(err)), { name: typeof err });
  const said = new Error(errorText(err), "cause" in err ? { cause: err.cause } : undefined);
  said.name = err.name;
  const { code } = err as { code?: unknown };
  return code === undefined ? said : Object.assign(said, { code });
}
