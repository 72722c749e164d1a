/**
 * Valibot pieces that plugin schemas share. Each key documents itself with
 * `v.description` (the README's tables are generated from these), so a sink that uses
 * `batchSchema`, `retrySchema` or `streamName` gets the same words as every other.
 */
import * as v from "valibot";
import { MAX_TIMER_MS } from "../protocol/retry.ts";
import { isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";
import { KIND_PATTERN, KIND_RULE, NAMESPACE_PATTERN, NAMESPACE_RULE } from "../protocol/envelope.ts";
import { builtInKindCase, caseRule } from "../protocol/kinds.ts";
import type { Logger } from "./telemetry.ts";
import { holdsFileContent } from "./credential-file.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "10s", "5m", "24h", "7d" (or a bare number of milliseconds) into milliseconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(input.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

const DURATION_EXAMPLES = 'a duration such as "500ms", "10s", "5m", "24h" or "7d"';

/**
 * A span of time in config: "10s", "5m", "24h", "7d", or milliseconds as a number. Outputs milliseconds. A negative
 * one (`-5s`, `-1`) is said to be one: the list of forms alone reads as if its unit were wrong.
 */
const timeSpan = v.pipe(
  v.union([v.string(), v.number()]),
  // Read by the host: a bare number under a second is warned of (host/config-keys.ts, bareMilliseconds).
  v.metadata({ duration: true }),
  v.check(
    (input) => parseDuration(input) !== undefined,
    ({ input }) =>
      /^\s*-/.test(String(input))
        ? `must not be negative: write ${DURATION_EXAMPLES}`
        : `expected ${DURATION_EXAMPLES}`,
  ),
  v.transform((input) => parseDuration(input)!),
);

/** A duration in config that something waits for (a timeout, an interval, a delay): at most MAX_TIMER_MS. */
export const duration = v.pipe(
  timeSpan,
  v.maxValue(MAX_TIMER_MS, "must be at most 596h (2^31-1 ms: no timer waits longer)"),
);

/** An age that nothing waits for, only compares with (retention's `maxAge`): no upper bound. */
export const age = timeSpan;

/** A duration that must not be 0: a wait, timeout or period of none would spin, or never succeed. */
export const positiveDuration = v.pipe(duration, v.minValue(1, "must be more than 0"));

/** A TCP port. */
export const port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));

/** A positive integer. */
export const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));

/** A stream name for a `stream` key, with the rule every entry point states when it refuses one. */
export const streamName = v.pipe(
  v.string(),
  v.check(isStreamName, `must be ${STREAM_NAME_RULE}`),
  v.description("A stream: `all`, `shared` or `node/<node name>`."),
);

/** A config duration as written (`"500ms"`) or in milliseconds. */
type DurationInput = string | number;

/**
 * Why no object has the kind `kind`, or undefined: a resource's name (`pods`) is no envelope's `kind`, nor is a
 * built-in kind in another case, which is named to be written instead. Any other kind (a custom resource's) is taken.
 */
export function kindProblem(kind: string): string | undefined {
  const builtIn = builtInKindCase(kind);
  if (builtIn !== undefined) return caseRule(builtIn);
  return KIND_PATTERN.test(kind) ? undefined : KIND_RULE;
}

/** An API kind (`Pod`, `Rollout`) that a filter or rule by it can match (kindProblem). */
export const kindName = v.pipe(
  v.string(),
  v.check(
    (kind) => kindProblem(kind) === undefined,
    ({ input }) => kindProblem(input as string) ?? KIND_RULE,
  ),
);

/** A namespace's name (a DNS-1123 label): one no namespace can have would match nothing. */
export const namespaceName = v.pipe(v.string(), v.regex(NAMESPACE_PATTERN, NAMESPACE_RULE));

/**
 * The path of a file kubemeta reads a credential or a kubeconfig from; a value that holds what such a file holds is
 * refused (holdsFileContent) and, as every config error, not quoted.
 */
export const credentialPath = v.pipe(
  v.string(),
  v.minLength(1),
  v.check(
    (path) => !holdsFileContent(path),
    "holds what a file holds (a line break, a mapping, a PEM block, an nkey seed or a JWT, or their base64), not a " +
      "file's path: give the path of the file (a Secret mounted as one)",
  ),
);

/**
 * The largest `batch.size` unless a sink declares its own `maxSize`. A batch is held whole until it is delivered (its
 * envelopes by `consume`, its text or messages by the sink), and with a linger a sink catching up gathers all it reads
 * in that time, up to the whole retained log (a million updates by default). A `jsonl` sink catching up on 100,000
 * Pods (1.75 KB a line) in one batch took +485 MiB of RSS, in batches of 10,000 +250–280 MiB, of 500 +110–135 MiB; a
 * text past 2^31 characters (1.2 million such lines) is no JavaScript string: such a batch fails at every retry.
 * Without a linger a batch is at most one page of the log (500 updates) whatever its size: a larger one saves nothing.
 */
export const MAX_BATCH_SIZE = 10_000;

/** A number of updates in a batch: 1 to `maxSize`. */
export function batchSizeSchema(maxSize = MAX_BATCH_SIZE) {
  return v.pipe(positiveInt, v.maxValue(maxSize));
}

export interface BatchSchemaOptions {
  /** Default `batch.size` (500). */
  size?: number;
  /** Default `batch.linger` (`"0ms"`: a batch leaves as soon as what is committed is read). */
  linger?: DurationInput;
  /** Largest `batch.size` accepted (MAX_BATCH_SIZE by default): less for a receiver with a limit of its own. */
  maxSize?: number;
}

/**
 * The standard `batch: { size, linger }` key of a sink built on `consume`; its output is
 * `consume`'s `batch` option. `batch: batchSchema({ size: 100, linger: "500ms" })` sets
 * the sink's own defaults.
 */
export function batchSchema(options: BatchSchemaOptions = {}) {
  const { size = 500, linger = "0ms", maxSize = MAX_BATCH_SIZE } = options;
  // The plugin author's mistake, said as the plugin loads: else every config that leaves batch.size out is refused.
  if (!Number.isSafeInteger(size) || size < 1 || size > maxSize)
    throw new RangeError(`batchSchema: the default size ${size} is not a whole number from 1 to maxSize (${maxSize})`);
  return v.optional(
    v.pipe(
      v.strictObject({
        size: v.optional(
          v.pipe(
            batchSizeSchema(maxSize),
            v.description(`Most updates in one batch (1–${maxSize.toLocaleString("en-US")}).`),
          ),
          size,
        ),
        linger: v.optional(
          v.pipe(duration, v.description("Longest wait for a batch to fill once it holds an update.")),
          linger,
        ),
      }),
      v.transform(({ size, linger }) => ({ size, lingerMs: linger })),
      v.description("How updates are grouped into batches: one batch is one delivery (a request, a write, a flush)."),
    ),
    {},
  );
}

export interface RetrySchemaOptions {
  /** Default `retry.initial` (`"1s"`). */
  initial?: DurationInput;
  /** Default `retry.max` (`"60s"`). */
  max?: DurationInput;
}

/** For a backoff's `{ initial, max }` (parsed durations): a first delay longer than the longest is a mistake. */
export const initialWithinMax = v.check(
  ({ initial, max }: { initial: number; max: number }) => initial <= max,
  "initial must not be longer than max",
);

/**
 * The standard `retry: { initial, max }` key of a sink built on `consume`; its output is
 * `consume`'s `retry` option.
 */
export function retrySchema(options: RetrySchemaOptions = {}) {
  const { initial = "1s", max = "60s" } = options;
  return v.optional(
    v.pipe(
      v.strictObject({
        initial: v.optional(
          v.pipe(positiveDuration, v.description("Delay before the first retry of a batch that failed.")),
          initial,
        ),
        max: v.optional(v.pipe(duration, v.description("Longest delay between two attempts at a batch.")), max),
      }),
      initialWithinMax,
      v.transform(({ initial, max }) => ({ initialMs: initial, maxMs: max })),
      v.description("Exponential backoff with full jitter between retries of a batch: `initial` doubling up to `max`."),
    ),
    {},
  );
}

/**
 * The standard `stallAfter` key of a sink built on `consume`; its output is `consume`'s `stallAfterMs` option.
 * `stallAfterSchema("2m")` sets the sink's own default (60s otherwise, consume's).
 */
export function stallAfterSchema(stallAfter: DurationInput = "60s") {
  return v.optional(
    v.pipe(
      positiveDuration,
      v.description(
        "How long one batch may stay undelivered before `kubemeta_sink_stalled` says so and a warning is logged: " +
          "longer than its destination's usual restarts, so an alert on the gauge means an outage.",
      ),
    ),
    stallAfter,
  );
}

/** A config key still accepted under its old name: the old name, and the key that replaced it. */
export interface DeprecatedKey {
  key: string;
  use: string;
}

/** An optional key kept for configs written before it was renamed to `use`. */
export function deprecatedKey<S extends v.GenericSchema>(schema: S, use: string) {
  return v.optional(v.pipe(schema, v.metadata({ deprecated: use }), v.description(`Deprecated: use \`${use}\`.`)));
}

/**
 * Keys users guess for this one (`file`, `path` for libSQL's `url`), in its pipe: writing one is an unknown key told
 * which to write, and how (`hint`: `a file store is url: file:<path>`), where a typo's did-you-mean finds no key near.
 */
export function guessedKeys<T>(keys: readonly string[], hint: string) {
  return v.metadata<T, { guessedKeys: readonly string[]; hint: string }>({ guessedKeys: keys, hint });
}

/**
 * The deprecated keys of an object schema (`deprecatedKey`), nested ones as `backoff.initial`,
 * each with the key that replaced it.
 */
export function deprecatedKeysOf(schema: v.GenericSchema, prefix = ""): DeprecatedKey[] {
  if (!("entries" in schema)) return [];
  return Object.entries(schema.entries as Record<string, v.GenericSchema>).flatMap(([name, field]) => {
    const inner = field.type === "optional" ? (field as v.OptionalSchema<v.GenericSchema, unknown>).wrapped : field;
    const use = v.getMetadata(inner).deprecated;
    const own = typeof use === "string" ? [{ key: prefix + name, use }] : [];
    return [...own, ...deprecatedKeysOf(inner, `${prefix}${name}.`)];
  });
}

/**
 * For a schema's final transform: the value of an old key when the config has it, else that of the key that replaced
 * it. The host refuses a config that writes both (host/config-entries.ts): a new key's default cannot be told from a
 * value the user wrote once the schema has run. The host warns of the old keys written (`deprecatedKey` marks them),
 * at start and in `--check`: a plugin need not.
 *
 * `_key` and `_used` are what a plugin once passed to collect the old keys for its own warnDeprecated call: taken and
 * left alone, so that such a plugin still loads and type-checks, and its list stays empty (the host's warning is the
 * only one).
 */
export function alias<T>(old: T | undefined, current: T, _key?: DeprecatedKey, _used?: DeprecatedKey[]): T {
  return old === undefined ? current : old;
}

/**
 * Logs one warning per deprecated key in `used`, naming the key to write instead: the host's, once at start, of the
 * keys `--check` warns of. Still exported for plugins written when they warned themselves (see alias).
 */
export function warnDeprecated(logger: Logger, used: readonly DeprecatedKey[]): void {
  for (const key of used) logger.warn(deprecation(key), { ...key });
}

/** What a start logs of a deprecated key, and `--check` prints. */
export function deprecation({ key, use }: DeprecatedKey): string {
  return `config key "${key}" is deprecated and will be removed; write "${use}" instead`;
}
