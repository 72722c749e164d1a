/**
 * The pieces of the valibot schemas (one in sse.ts, one in nats.ts) that check subscribeSse's and subscribeNats's
 * options at the call, before anything is opened: an option that is not one, a value of another type, a duration no
 * timer can wait, a stream given twice is a TypeError (an unknown or missing option, a wrong type) or a RangeError (a
 * value out of its range) naming the option, rather than a failure retried for ever or an input silently ignored.
 */
import * as v from "valibot";
import { eachOnce } from "../protocol/each-once.ts";
import { issuePath } from "../protocol/issue-path.ts";
import { MAX_TIMER_MS } from "../protocol/retry.ts";
import { isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";
import type { InformerHandlers } from "./cache.ts";

/** One schema per option of `T`, none left out and none more (`satisfies`): the interface and the checks agree. */
export type EntriesOf<T> = { [K in keyof Required<T>]: v.GenericSchema };

/**
 * A strict object of `entries` (the options of `what`): a key it does not take is named with those it does, a missing
 * one is said in its schema's own words (`nc: give a connection …`).
 */
export function strictOptions<E extends v.ObjectEntries>(what: string, entries: E) {
  const known = Object.keys(entries).join(", ");
  return v.strictObject(entries, (issue) => {
    if (issue.expected === "never") return `not an option of ${what} (${known})`;
    const key = issue.path?.[0]?.key;
    const message = typeof key === "string" ? (entries[key] as { message?: unknown } | undefined)?.message : undefined;
    if (typeof message === "string") return message;
    return issue.path === undefined ? `${what} takes an object of options (${known})` : "required";
  });
}

/**
 * Parses `options` with `schema`, or throws its first issue, at the path of the option as config errors name one
 * (`reconnect.maxMs: …`, `streams[1]: …`).
 */
export function parseOptions<S extends v.GenericSchema>(schema: S, options: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, options, { abortEarly: true });
  if (result.success) return result.output;
  const [issue] = result.issues;
  const path = issuePath((issue.path ?? []).map((item) => item.key));
  const message = path === "" ? issue.message : `${path}: ${issue.message}`;
  throw issue.kind === "schema" ? new TypeError(message) : new RangeError(message);
}

/**
 * Milliseconds a timer waits: a whole number from 1 (or 0, when `zeroMeans` says what 0 does) to MAX_TIMER_MS
 * (24.8 days). `setTimeout` takes a longer delay as 1 ms: a large timeout would fire at once, over and over (a replay
 * asked, a connection cut, every millisecond).
 */
export function milliseconds(zeroMeans?: string) {
  const least = zeroMeans === undefined ? 1 : 0;
  const rule = `a whole number of milliseconds from ${least} to ${MAX_TIMER_MS}${zeroMeans ? ` (0 ${zeroMeans})` : ""}`;
  return v.pipe(
    v.number((issue) => `${issue.received} is not ${rule}`),
    v.check(
      (ms) => Number.isInteger(ms) && ms >= least && ms <= MAX_TIMER_MS,
      (issue) => `${issue.received} is not ${rule}`,
    ),
  );
}

export interface BackoffMs {
  initialMs: number;
  maxMs: number;
}

/**
 * A backoff's `{ initialMs, maxMs }`, each given or its default, the first not above the second (an `initialMs`
 * above the default `maxMs` too); its output, the backoff to use.
 */
export function backoff(defaults: BackoffMs) {
  return v.pipe(
    v.optional(
      strictOptions("a backoff", { initialMs: v.optional(milliseconds()), maxMs: v.optional(milliseconds()) }),
      {},
    ),
    v.check(
      ({ initialMs = defaults.initialMs, maxMs = defaults.maxMs }) => initialMs <= maxMs,
      ({ input: { initialMs, maxMs } }) => {
        // One of the two is given: the other, its default, is named as one (a `maxMs: 100` alone is below 250).
        const initial =
          initialMs === undefined ? `the default initialMs ${defaults.initialMs}` : `initialMs ${initialMs}`;
        const max = maxMs === undefined ? `the default maxMs ${defaults.maxMs}` : `maxMs ${maxMs}`;
        return `${initial} is above ${max}`;
      },
    ),
    v.transform(({ initialMs = defaults.initialMs, maxMs = defaults.maxMs }): BackoffMs => ({ initialMs, maxMs })),
  );
}

/** The streams to follow, one cache each: at least one, each once (a stream given twice is a mistake to say). */
export const streamsSchema = v.pipe(
  v.array(
    v.pipe(
      v.string((issue) => `${issue.received} is not a stream (expected ${STREAM_NAME_RULE})`),
      v.check(isStreamName, (issue) => `${issue.received} is not a stream (expected ${STREAM_NAME_RULE})`),
    ),
    "give at least one stream to follow",
  ),
  v.minLength(1, "give at least one stream to follow"),
  eachOnce(),
);

/** An optional callback's schema. */
export const handler = v.optional(v.function((issue) => `${issue.received} is not a function`));

/** The informer callbacks both subscriptions take. */
export const handlerEntries = {
  onAdd: handler,
  onUpdate: handler,
  onDelete: handler,
  onSynced: handler,
  onReset: handler,
  onError: handler,
} satisfies EntriesOf<InformerHandlers>;
