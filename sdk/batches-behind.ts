/**
 * A `consume` sink of one stream (`shared`, `node/<name>`) whose position retention passed (sdk/batches.ts): it reads
 * `all` to move its position, but what it lost is what retention removed of its own stream, which the store tells
 * apart (each stream's horizon: the last of its updates removed). Other streams' pruned versions are none of its loss,
 * and its updates kept below the log's horizon (objects' states, unchanged since) are still delivered.
 */
import { isBehindRetention, type CommittedLog } from "./contract.ts";
import type { Envelope } from "../protocol/envelope.ts";
import type { Batch, BatchOptions } from "./batches.ts";
import type { Update } from "./model.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";

/**
 * Batches of `options.stream`'s updates after `after` through `through` (the log's horizon), as the stream keeps
 * them. Past its stream's horizon the position jumps there, the versions in between lost (other streams' among them:
 * the store no longer tells which were whose); with `behindRetention: "head"`, to the head, as for `all`. Returns the
 * position reached, from which the sink reads `all` again.
 */
export async function* ownStreamBehind(
  log: CommittedLog,
  options: BatchOptions & { stream: string },
  after: number,
  through: number,
): AsyncGenerator<Batch, number> {
  const { stream, size, collect } = options;
  let from = after;
  while (from < through) {
    let updates: Update[];
    try {
      // A read the store holds keeps no stop waiting, as the log's follow() has it.
      const read = await until(log.read({ stream, after: from, to: through, limit: size }), Infinity, options.signal);
      if (read === TIMED_OUT) return from;
      updates = read;
    } catch (error) {
      if (!isBehindRetention(error)) throw error;
      // Retention removed updates of the stream after `from`: lost up to the last of them (past `through`, when a
      // prune under way took the stream further than the log had heard of when it said where its horizon was). A
      // batch of its own, passed at once: counted once, though the delivery of what follows fails and is read again.
      const skipTo = options.behindRetention === "head" ? log.head() : error.oldest - 1;
      yield { envelopes: [], through: skipTo, lost: skipTo - from };
      from = skipTo;
      continue;
    }
    const envelopes: Envelope[] = [];
    for (const update of updates) collect(update, envelopes);
    const last = updates.length < size ? through : updates[updates.length - 1]!.version;
    yield { envelopes, through: last, lost: 0 };
    from = last;
  }
  return from;
}
