/**
 * The core's ChangeSink as one instance of a source sees it, closed once that instance is retired (host/supervise.ts:
 * its stop over, at the host's stop, with `ha` the term's end, or once a start that hung is given up and the source
 * created again; or its create failed). What a source hands over after that (a timer or a loop its stop left running,
 * beside the instance created in its place) is ignored, said once, rather than numbered and committed behind the stop
 * (into a store about to close, which refused each one at length: `store commit failed; retrying`, then an unhandled
 * rejection per change: `the libsql store is not started`). A relist's end after the close aborts the relist: its
 * applies were ignored, so ending it would delete what it listed.
 */
import type { ChangeSink, Relist } from "../sdk/contract.ts";
import type { Logger } from "../sdk/telemetry.ts";

/** `closed`: the instance is retired, nothing more passes. */
export function sourceGate(pipeline: ChangeSink, logger: Logger, closed: AbortSignal): ChangeSink {
  let said = false;
  /** True once closed, after saying so the first time: the source's fault, named by its resource. */
  const late = (resource: string, call: string) => {
    if (closed.aborted && !said) {
      said = true;
      logger.warn(
        "a source handed a change over after its stop; ignored: a source's stop must end what hands changes over " +
          "(a timer, a loop)",
        { resource, call },
      );
    }
    return closed.aborted;
  };
  const gatedRelist = (resource: string, relist: Relist): Relist => ({
    end(resourceVersion) {
      if (!late(resource, "relist's end")) return relist.end(resourceVersion);
      relist.abort();
      return Promise.resolve();
    },
    abort: () => relist.abort(),
  });
  const { prepared } = pipeline;
  const changes: ChangeSink = {
    resumePoint: (resource, kind) => pipeline.resumePoint(resource, kind),
    claimKind: (resource, kind) => pipeline.claimKind(resource, kind),
    apply: (resource, type, object) => (late(resource, "apply") ? undefined : pipeline.apply(resource, type, object)),
    bookmark: (resource, resourceVersion) =>
      late(resource, "bookmark") ? undefined : pipeline.bookmark(resource, resourceVersion),
    relist(resource, kind) {
      if (!late(resource, "relist")) return gatedRelist(resource, pipeline.relist(resource, kind));
      return { end: () => Promise.resolve(), abort() {} };
    },
    retract: (resource) => (late(resource, "retract") ? Promise.resolve() : pipeline.retract(resource)),
    flush: () => pipeline.flush(),
  };
  if (prepared)
    changes.prepared = {
      preparer: prepared.preparer,
      apply: (resource, type, change) => (late(resource, "apply") ? undefined : prepared.apply(resource, type, change)),
    };
  return changes;
}
