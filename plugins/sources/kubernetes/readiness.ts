/**
 * What the kubernetes source tells the host until every resource has synced (`ctx.waiting`, shown by /readyz): the
 * resources waited for (not served yet, in the config's order), the last error of each failing one (resources
 * failing alike named together), and the others not synced yet, since a list or watch that hangs says nothing else.
 * Once every resource has synced, `ctx.synced()`.
 */
import type { SourceContext } from "../../../sdk/contract.ts";
import { type LogFields, type Logger, outageLog } from "../../../sdk/telemetry.ts";
import { ApiError, causeOfRequest, loggedError } from "../../../kube/status.ts";
import type { Scope } from "./resources.ts";

export class SourceReadiness {
  private readonly reasons: Map<string, string | undefined>;
  private readonly errors = new Map<string, string>();
  private readonly unsynced: Set<string>;

  constructor(
    private readonly resources: string[],
    private readonly ctx: Pick<SourceContext, "logger" | "synced" | "waiting">,
  ) {
    this.reasons = new Map(resources.map((name) => [name, undefined]));
    this.unsynced = new Set(resources);
  }

  /** Why a resource is waited for (not served yet); undefined once it is served. */
  waiting(resource: string, reason: string | undefined): void {
    this.reasons.set(resource, reason);
    this.report();
  }

  /** The last error of a resource not synced yet; undefined once it works. */
  failing(resource: string, error: string | undefined): void {
    if (error === undefined) this.errors.delete(resource);
    else this.errors.set(resource, error);
    this.report();
  }

  /** A resource delivered its initial state; the source is synced with the last one. Safe twice. */
  synced(resource: string): void {
    if (!this.unsynced.delete(resource)) return;
    this.report();
    if (this.unsynced.size > 0) return;
    this.ctx.logger.info("kubernetes source synced", { resources: this.resources.length });
    this.ctx.synced();
  }

  report(): void {
    const waited = [...this.reasons.values()].filter((given) => given !== undefined);
    const failing = new Map<string, string[]>();
    for (const [name, error] of this.errors) failing.set(error, [...(failing.get(error) ?? []), name]);
    const quiet = [...this.unsynced].filter((name) => this.reasons.get(name) === undefined && !this.errors.has(name));
    const parts = [
      ...(waited.length > 0 ? [`waiting for ${waited.join(", ")}`] : []),
      ...[...failing].map(([error, names]) => `${names.join(", ")}: ${error}`),
      ...(quiet.length > 0 ? [`${quiet.join(", ")}: not synced yet`] : []),
    ];
    this.ctx.waiting(parts.length > 0 ? parts.join("; ") : undefined);
  }
}

/** Between two warnings of one run of failures of one request (a resource's list/watch, its pages, its discovery). */
const RETRY_WARNING_EVERY_MS = 5 * 60_000;

export interface RetryLog {
  /** One more failed attempt (its error, and fields such as the delay before the next). */
  failed(err: unknown, fields: LogFields): void;
  /** An attempt worked: after failures, one info line, `recovered`. */
  succeeded(): void;
}

/**
 * The log of a request the source retries until it works: the first failure of a run a warning, and each cause
 * (status, code) that comes later in the run, then a warning every 5 minutes with the attempts failed so far, each
 * other failure a debug line; `recovered` at info once it works again. The API server away for an hour would
 * otherwise write a warning per resource per backoff step (30 s at most) for as long.
 */
export function retryLog(logger: Logger, msg: string, recovered: string): RetryLog {
  const outage = outageLog(logger, msg, recovered, { first: "warn", everyMs: RETRY_WARNING_EVERY_MS });
  return {
    failed: (err, fields) => outage.failed({ error: loggedError(err), ...fields }, causeOfRequest(err)),
    succeeded: () => outage.succeeded(),
  };
}

/**
 * Two refusals whose cause is in kubemeta's own setup, which the API server's words do not point to: a field selector
 * is checked at load only as a selector, and which fields a resource supports its API server alone tells, with a 400
 * that says nothing of where the field came from (`field label not supported: spec.nodeName`); and a 403 is a role
 * that lacks the resource (a kind added to `resources` since the role was applied).
 */
export function explained(err: unknown, { fieldSelector }: Scope): unknown {
  if (!(err instanceof ApiError)) return err;
  let why: string | undefined;
  if (err.code === 400 && fieldSelector && /field label/.test(err.message))
    why = `the source's fieldSelector "${fieldSelector}" names a field this resource does not support`;
  else if (err.code === 403)
    why = "kubemeta's role lacks this resource: apply the one `main.ts rbac` prints for this config";
  if (why === undefined) return err;
  const said = err.message.slice(`${err.code} ${err.reason}: `.length);
  return new ApiError(err.code, err.reason, `${said} (${why})`, err.retryAfterMs, err.causes);
}
