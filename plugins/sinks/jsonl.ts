/**
 * `jsonl`: appends every update of a stream, as one JSON envelope per line, to a file or
 * to stdout. Its position is kept in the store, so a restart continues where it left off.
 *
 * This is the reference sink: copy it to write your own. A sink declares its config
 * (a valibot schema) and, in `create`, hands `consume` (core/consume.ts) one function:
 * `deliver`, which writes a batch. `consume` reads the log, saves the cursor after each
 * batch, retries a batch that failed, and keeps the lag metric; see core/contract.ts for
 * everything else `ctx` offers.
 *
 * @example
 * ```yaml
 * sinks:
 *   - type: jsonl
 *     path: /var/lib/kubemeta/updates.jsonl
 *     stream: shared
 * ```
 */
import * as v from "valibot";
import { appendFile } from "node:fs/promises";
import { defineSink } from "../../sdk/contract.ts";
import { consume } from "../../sdk/consume.ts";
import { isStreamName } from "../../protocol/streams.ts";
import { toEnvelope } from "../../sdk/model.ts";

export default defineSink({
  type: "jsonl",
  description: "Appends each update as a JSON line (an envelope) to a file or to stdout.",
  // The config and its defaults: the host validates each entry against it before anything starts.
  schema: v.strictObject({
    /** File to append to; "-" is stdout (where kubemeta's own log lines go too). */
    path: v.optional(v.pipe(v.string(), v.minLength(1)), "-"),
    /** The stream to write: "all", "shared" or "node/<name>". */
    stream: v.optional(v.pipe(v.string(), v.check(isStreamName, 'must be "all", "shared" or "node/<name>"')), "all"),
  }),
  example: { path: "/var/lib/kubemeta/updates.jsonl", stream: "all" },

  create(config, ctx) {
    const write = config.path === "-" ? (text: string) => Bun.write(Bun.stdout, text) : (text: string) => appendFile(config.path, text);
    return consume(ctx, {
      stream: config.stream,
      // A write that throws (a full disk) is retried with backoff: a line may be written twice, never skipped.
      async deliver(updates) {
        await write(updates.map((update) => `${JSON.stringify(toEnvelope(ctx.log.epoch, update, config.stream))}\n`).join(""));
      },
    });
  },
});
