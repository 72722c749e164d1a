/** Injected failures: the next matching requests fail the way a loaded or restarting API server fails them. */
import { internalError, listTooOld, serviceUnavailable, tooManyRequests, watchTooOld, type Status } from "./status.ts";

export type Verb = "list" | "watch" | "get";

export interface FaultSpec {
  verb?: "list" | "watch";
  resource?: string;
  status: 429 | 500 | 503 | 410;
  retryAfterSeconds?: number;
  count?: number;
  /**
   * How a watch fails: "status" = an HTTP error response; "event" = HTTP 200 and an
   * ERROR event carrying the Status, then the end of the stream. Default: "event" for
   * a 410 on a watch (what kube-apiserver does for a too-old resourceVersion),
   * "status" otherwise. A LIST always fails with a status.
   */
  as?: "status" | "event";
}

export interface Failure {
  status: Status;
  asEvent: boolean;
}

export class Faults {
  private pending: Array<FaultSpec & { remaining: number }> = [];

  add(spec: FaultSpec): void {
    this.pending.push({ ...spec, remaining: spec.count ?? 1 });
  }

  /** The failure for this request, if an injected fault matches it (and is used up by it). */
  take(verb: Verb, resource: string, watchFrom: () => { requested: number; oldest: number }): Failure | undefined {
    if (verb === "get") return undefined;
    const fault = this.pending.find(
      (f) => (f.verb === undefined || f.verb === verb) && (f.resource === undefined || f.resource === resource),
    );
    if (!fault) return undefined;
    if (--fault.remaining <= 0) this.pending = this.pending.filter((f) => f !== fault);
    const asEvent = verb === "watch" && (fault.as ?? (fault.status === 410 ? "event" : "status")) === "event";
    return { status: this.status(fault, verb, watchFrom), asEvent };
  }

  private status(fault: FaultSpec, verb: Verb, watchFrom: () => { requested: number; oldest: number }): Status {
    switch (fault.status) {
      case 429:
        return tooManyRequests(fault.retryAfterSeconds ?? 1);
      case 500:
        return internalError("injected by the test API server");
      case 503:
        return serviceUnavailable(fault.retryAfterSeconds);
      case 410: {
        if (verb === "list") return listTooOld();
        const { requested, oldest } = watchFrom();
        return watchTooOld(requested, oldest);
      }
    }
  }
}
