/**
 * `jsonl`: appends every update of a stream, as one JSON envelope per line, to a file or
 * to stdout. Its position is kept in the store, so a restart continues where it left off.
 *
 * This is the reference sink: copy it to write your own, importing "kubemeta/sdk" where
 * it imports the SDK's entry by path. A sink declares its config (a valibot schema, with
 * the standard `batch` and `retry` keys) and, in `create`, hands `consume` one function:
 * `deliver`, which writes a batch of envelopes. `consume` reads the log, saves the cursor
 * after each batch, retries a batch that failed, and keeps the lag metric; see
 * SinkContext (sdk/sink-contract.ts) for everything else `ctx` offers.
 *
 * @example
 * ```yaml
 * sinks:
 *   - type: jsonl
 *     path: /var/lib/kubemeta/updates.jsonl
 *     stream: shared
 * ```
 */
import {
  appendLines,
  batchSchema,
  consume,
  defineSink,
  jsonText,
  retrySchema,
  stallAfterSchema,
  streamName,
  tildeProblem,
  v,
} from "../../sdk/index.ts";
import { checkAppendable, fifoProblem, heldStreamAt, realFile } from "./jsonl/file.ts";

/**
 * Through process.stdout (or process.stderr), as kubemeta's log lines are written: two writers of one pipe
 * (Bun.write(Bun.stdout) was the other) splice each other's lines when its reader is slow. Settles once the text is
 * handed to the pipe. Once a write failed (its reader gone: EPIPE), the stream is no longer writable, for good; Bun
 * then calls back without an error for a write whose text it dropped, so each is refused here: the cursor stays
 * where the reader stopped.
 */
function writeHeld(fd: 1 | 2, text: string): Promise<void> {
  const [stream, name] = fd === 1 ? [process.stdout, "stdout"] : [process.stderr, "stderr"];
  if (!stream.listeners("error").includes(ignoreStreamError)) stream.on("error", ignoreStreamError);
  return new Promise((resolve, reject) => {
    if (!stream.writable) reject(new Error(`${name} is closed: its reader is gone`));
    else stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** The failed write's callback reports it: Bun raises a stream error nobody listens for as an unhandled rejection. */
const ignoreStreamError = () => {};

export default defineSink({
  type: "jsonl",
  description: "Appends each update as a JSON line (an envelope) to a file or to stdout.",
  // The config and its defaults: the host validates each entry against it before anything starts.
  schema: v.strictObject({
    path: v.optional(
      v.pipe(
        v.string(),
        v.minLength(1),
        // Wherever it is checked, not only where it exists: opened, such a path fails at every write, retried forever.
        v.check(
          (path) => !/(^|\/)\.\.?$|\/$/.test(path),
          "names a directory (it ends in /, . or ..): name a file to append to",
        ),
        // The system takes no file name with one: every write would fail, and be retried for ever.
        v.check((path) => !path.includes("\0"), "holds a NUL character, which no file name can"),
        v.check(
          (path) => tildeProblem(path) === undefined,
          ({ input }) => tildeProblem(input as string)!,
        ),
        v.description("File to append to; `-` is stdout."),
      ),
      "-",
    ),
    stream: v.optional(v.pipe(streamName, v.description("`all`, `shared` or `node/<name>`.")), "all"),
    batch: batchSchema(),
    retry: retrySchema(),
    stallAfter: stallAfterSchema(),
  }),
  example: { path: "/var/lib/kubemeta/updates.jsonl", stream: "all" },
  // Two entries on one file would interleave their lines, and one's cut-back after a failed write cut the other's:
  // the file named through any link, so that two paths to it are seen as one. Kubemeta's own stdout or stderr, by its
  // path (/dev/stderr), is written through the process's stream as `-` is: whole lines, no cut-back, so several may.
  claims: (config) =>
    config.path === "-" || heldStreamAt(config.path) !== undefined ? [] : [`the file ${realFile(config.path)}`],
  // A path that can never be appended to, said at --check rather than as each delivery failing.
  check: (config) => (config.path === "-" ? undefined : checkAppendable(config.path)),

  create(config, ctx) {
    // The process's own stdout or stderr, named by its path (/dev/stderr), is written through it, as `-` is. Opened
    // anew: a pipe (to read its last byte as well) had the process as a reader, so once the real one was gone a write
    // blocked for good; a file (`> file`) was appended to while the log wrote at stdout's own offset, over the lines.
    const held = config.path === "-" ? 1 : heldStreamAt(config.path);
    const write = (text: string) =>
      held
        ? writeHeld(held, text)
        : // Made one since the check, or never checked: refused before a line goes where no reader gets it.
          appendLines(config.path, text, { refuse: (found) => fifoProblem(config.path, found) });
    return consume(ctx, {
      stream: config.stream,
      batch: config.batch,
      // A write that throws (a full disk) is retried with backoff: a line may be written twice, never skipped.
      retry: config.retry,
      stallAfterMs: config.stallAfter,
      async deliver(envelopes) {
        await write(envelopes.map((envelope) => `${jsonText(envelope)}\n`).join(""));
      },
    });
  },
});
