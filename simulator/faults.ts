/** Injected failures: the next matching requests fail the way a loaded or restarting API server fails them. */
import { expiredContinue } from "./list.ts";
import {
  forbidden,
  internalError,
  listTooOld,
  pathNotFound,
  serviceUnavailable,
  tooManyRequests,
  watchTooOld,
  type Status,
} from "./status.ts";
import type { WriteVerb } from "./writes.ts";

export type Verb = "list" | "watch" | "get" | "discovery" | WriteVerb;

export interface FaultSpec {
  /**
   * Without one, lists and watches. `discovery` only when named, its `resource` the path asked (`/apis/<group>/<v>`):
   * a 404 there is a group version not served yet, as by an API server that just restarted. `get` (one object) and
   * the writes (`create`, `update`, `delete`: a Lease's) only when named too.
   */
  verb?: Verb;
  resource?: string;
  /** 403: RBAC's denial of the request's verb on the resource. */
  status: 429 | 500 | 503 | 410 | 404 | 403;
  /** Seconds the Status and its Retry-After header say (429: 1 unless given); null: a 429 without either. */
  retryAfterSeconds?: number | null;
  count?: number;
  /**
   * How a watch fails: "status" = an HTTP error response; "event" = HTTP 200 and an
   * ERROR event carrying the Status, then the end of the stream. Default: "event" for
   * a 410 on a watch (what kube-apiserver does for a too-old resourceVersion),
   * "status" otherwise. A LIST always fails with a status.
   */
  as?: "status" | "event";
  /**
   * true: only a LIST page after the first (a request with a continue token) matches; false: only a first page.
   * A 410 on such a page is the token's snapshot compacted away mid-list: the very Status an expired token gets.
   */
  continued?: boolean;
}

export interface Failure {
  status: Status;
  asEvent: boolean;
}

/** What the server knows of the request, for the Status it fails with. */
export interface FaultRequest {
  /** The LIST's continue parameter ("" on a first page and on watches). */
  continueToken: string;
  /** The resource's API group ("" for the core group) and the namespace asked for, as a 403 names them. */
  group?: string;
  namespace?: string | null;
  watchFrom(): { requested: number; oldest: number };
}

/** What a discovery request tells a fault: it has no continue token and watches from nowhere. */
export const DISCOVERY_REQUEST: FaultRequest = { continueToken: "", watchFrom: () => ({ requested: 0, oldest: 0 }) };

export class Faults {
  private pending: Array<FaultSpec & { remaining: number }> = [];

  add(spec: FaultSpec): void {
    this.pending.push({ ...spec, remaining: spec.count ?? 1 });
  }

  /** The failure for this request, if an injected fault matches it (and is used up by it). */
  take(verb: Verb, resource: string, request: FaultRequest): Failure | undefined {
    const continued = verb === "list" && request.continueToken !== "";
    const fault = this.pending.find(
      (f) =>
        (f.verb === undefined ? verb === "list" || verb === "watch" : f.verb === verb) &&
        (f.resource === undefined || f.resource === resource) &&
        (f.continued === undefined || f.continued === continued),
    );
    if (!fault) return undefined;
    if (--fault.remaining <= 0) this.pending = this.pending.filter((f) => f !== fault);
    const asEvent = verb === "watch" && (fault.as ?? (fault.status === 410 ? "event" : "status")) === "event";
    return { status: this.status(fault, verb, resource, request), asEvent };
  }

  private status(fault: FaultSpec, verb: Verb, resource: string, request: FaultRequest): Status {
    switch (fault.status) {
      case 403:
        return forbidden({ verb, resource, group: request.group ?? "", namespace: request.namespace ?? null });
      case 429:
        return tooManyRequests(fault.retryAfterSeconds === null ? undefined : (fault.retryAfterSeconds ?? 1));
      case 500:
        return internalError("injected by the test API server");
      case 503:
        return serviceUnavailable(fault.retryAfterSeconds ?? undefined);
      case 404:
        return pathNotFound();
      case 410: {
        if (verb === "list") return request.continueToken ? expiredContinue(request.continueToken) : listTooOld();
        const { requested, oldest } = request.watchFrom();
        return watchTooOld(requested, oldest);
      }
    }
  }
}
