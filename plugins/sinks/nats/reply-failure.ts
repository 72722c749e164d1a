/**
 * What a replay reply that ends in an error tells its requester (the error chunk, protocol/replay.ts), and what of it
 * is logged, how often: most causes end in `ask again`, since the requester can do nothing better.
 */
import { isBehindRetention } from "../../../sdk/contract.ts";
import type { LogFields, Logger } from "../../../sdk/telemetry.ts";
import { StoreReadFailed } from "../../../sdk/store-reads.ts";
import { MalformedRequestError } from "../../../protocol/replay.ts";
import { ConnectionDropped } from "./publisher.ts";
import type { Pending } from "./requests.ts";

/** The error of a reply whose read of the store failed: one that ends in `ask again later` (the client asks again). */
export const STORE_UNREADABLE = "the store cannot be read now; ask again later";
/**
 * The error of a request the sink holds when it stops (waiting for a slot, a turn, or the log to reach its `from`):
 * the requester asks again (another replica, or this one once it is back) rather than waiting out its timeout.
 */
export const STOPPING = "the NATS sink is stopping; ask again later";

/**
 * The error of a reply whose flush the connection's drop cut off (a NATS restart, a network cut): nothing an operator
 * should be paged for. It goes out once the connection is back, and a requester that was not cut off reads it: it
 * ends in `ask again`, or the client library would take the request as refused and reset.
 */
const CUT_OFF = "the NATS connection dropped before the server confirmed the reply; ask again";

export interface ReplyFailureOptions {
  logger: Logger;
  /** The responder's rate-limited warning, shared with its other warnings. */
  warn: (msg: string, fields: LogFields) => void;
  /** Whether the sink is stopping: what fails then is the stop's doing. */
  stopping: () => boolean;
}

/** Logs why a reply ends with an error, as often as that deserves, and returns what its error chunk says. */
export function replyFailure({ logger, warn, stopping }: ReplyFailureOptions) {
  return (error: unknown, pending: Pending): string => {
    if (error instanceof MalformedRequestError) {
      warn("malformed replay request", { error, payload: pending.excerpt ?? "" });
      return error.message;
    }
    if (error instanceof StoreReadFailed) {
      // A store down fails every request answered meanwhile: one line a minute, as /v1/updates and SSE streams.
      if (!stopping())
        warn("a read of the store failed; the requester is told to ask again later", { error: error.error });
      return STORE_UNREADABLE;
    }
    // An answer the sink's stop cut short (its connection closing): told to ask again, nothing went wrong.
    if (stopping()) return STOPPING;
    // Retention passed what the reply had still to read: its requester fell behind as any reader can (the log has
    // counted and logged it), and asked again it gets the stream's state.
    if (isBehindRetention(error)) return `retention overtook this reply: ${error.message}; ask again`;
    if (error instanceof ConnectionDropped) {
      warn("the NATS connection dropped during a replay; its requester asks again", { error: error.cause });
      return CUT_OFF;
    }
    logger.error("replay failed", { error });
    return `replay failed: ${(error as Error).message}; ask again`;
  };
}
