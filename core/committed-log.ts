/**
 * The committed log that sinks read. The newest updates stay in a bounded in-memory tail,
 * so live readers never touch the store; a reader further behind reads the store, through
 * the same call. Only committed updates ever enter the tail.
 */
import {
  BehindRetentionError,
  SNAPSHOT_PAGE,
  type CommittedLog,
  type FollowOptions,
  type LogQuery,
  type ObjectQuery,
  type Store,
} from "../sdk/contract.ts";
import { type Logger, type Metrics, rateLimitedWarn, streamLabel } from "../sdk/telemetry.ts";
import { ALL } from "../protocol/streams.ts";
import { aborted, TIMED_OUT, until } from "../protocol/retry.ts";
import { type CurrentObject, inStream, type Update } from "../sdk/model.ts";

export interface LogOptions {
  store: Store;
  epoch: string;
  head: number;
  oldest: number;
  logger: Logger;
  metrics: Metrics;
  /** Updates kept in memory for live readers (default 10,000; older reads go to the store). */
  tailSize?: number;
  /** Each stream's horizon (Store.horizons), when the store keeps them. */
  horizons?: Map<string, number>;
  /** Whether the store's objects are the whole state already (CommittedLog.whole); else markWhole() says when. */
  whole: boolean;
  /**
   * How long a read waits for the store's answer before it is given up, as one that failed, its late answer ignored
   * (default: as long as the store takes). A store that accepts connections and answers nothing fails a read only
   * after store.timeout: meanwhile every reader would wait on it, not told to come back.
   */
  unansweredMs?: number;
}

export interface HostLog extends CommittedLog {
  /** Adds a committed batch (in version order, contiguous with the head unless pruned in between) and wakes readers. */
  append(updates: Update[]): void;
  /** Records what retention left in the store: the oldest version, and each stream's horizon (if kept). */
  setOldest(oldest: number, horizons?: Map<string, number>): void;
  /** A leader's sources have synced (this one's, or as the store records): the objects are whole. Safe twice. */
  markWhole(): void;
  /** A follower that cannot read the store says so, and says when it can again (CommittedLog.behindStore). */
  setBehindStore(behind: boolean): void;
  /** This process serves the store no more, for `reason` (CommittedLog.retired); safe twice. */
  retire(reason: Error): void;
}

interface Scan {
  updates: Update[];
  /** Every version up to this one has been looked at. */
  through: number;
}

export function createLog(options: LogOptions): HostLog {
  const { store, epoch, unansweredMs = Infinity } = options;
  const tailSize = options.tailSize ?? 10_000;
  let tail: Update[] = [];
  let head = options.head;
  let oldest = options.oldest;
  // Without them (a store that does not keep them, or cannot be asked for one), every stream's horizon is the log's.
  const perStream = store.horizons !== undefined && store.horizon !== undefined;
  let horizons = perStream ? options.horizons : undefined;
  let wake: { promise: Promise<void>; resolve: () => void } = Promise.withResolvers<void>();
  const whole = Promise.withResolvers<void>();
  if (options.whole) whole.resolve();
  const resets = options.metrics.counter(
    "kubemeta_reader_resets_total",
    "Readers whose position fell behind retention, by stream class (all, shared, node).",
  );
  for (const stream of ["all", "shared", "node"]) resets.inc({ stream }, 0);
  // Every reader counted; logged once a minute: thousands of agents coming back after an outage are one line.
  const warn = rateLimitedWarn(options.logger);

  /** A stream's own horizon as the store last said: never capped by `oldest`, which moves only once a prune is over. */
  function horizon(stream: string): number {
    if (stream === ALL || !horizons) return oldest - 1;
    return horizons.get(stream) ?? 0;
  }

  /** `positioned`: false for a read that is no reader's position (LogQuery.noPosition): nobody fell behind. */
  function checkRetained(stream: string, after: number, positioned = true): void {
    const below = horizon(stream);
    if (after >= below) return;
    if (positioned) {
      resets.inc({ stream: streamLabel(stream) });
      // A subscriber then gets a reset, a `/v1/updates` client a 410 saying to start over.
      warn("a reader's position is behind retention", { stream, after, oldest: below + 1 });
    }
    throw new BehindRetentionError(after, below + 1);
  }

  const noAnswer = () => new Error(`no answer from the store in ${unansweredMs} ms`);

  /** The store's answer to `request`; throws once it has waited unansweredMs for it. */
  async function ask<T>(request: Promise<T>): Promise<T> {
    const answer = await until(request, Date.now() + unansweredMs);
    if (answer === TIMED_OUT) throw noAnswer();
    return answer;
  }

  /**
   * `pages`, each page's read given up as ask() gives a read up. The store's read stays open until that page's late
   * answer, and is closed then, not waited for: its close would wait as long.
   */
  async function* answeredPages<T>(pages: AsyncIterable<T>): AsyncIterable<T> {
    const iterator = pages[Symbol.asyncIterator]();
    let givenUp: Promise<unknown> | undefined;
    try {
      for (;;) {
        const next = iterator.next();
        const step = await until(next, Date.now() + unansweredMs);
        if (step === TIMED_OUT) {
          givenUp = next;
          throw noAnswer();
        }
        if (step.done) return;
        yield step.value;
      }
    } finally {
      const close = () => iterator.return?.();
      if (givenUp) givenUp.then(close, close).catch(() => {});
      else await close();
    }
  }

  function tailIndex(version: number): number {
    const first = tail[0];
    return first ? version - first.version : -1;
  }

  async function scan(query: LogQuery): Promise<Scan> {
    const { stream, after, limit } = query;
    const positioned = !query.noPosition;
    checkRetained(stream, after, positioned);
    const upTo = Math.min(query.to ?? head, head);
    if (after >= upTo) return { updates: [], through: Math.max(after, upTo) };
    const start = tailIndex(after + 1);
    if (start >= 0) {
      const updates: Update[] = [];
      let i = start;
      for (; i < tail.length && updates.length < limit; i++) {
        const update = tail[i]!;
        if (update.version > upTo) break;
        if (inStream(update, stream)) updates.push(update);
      }
      return { updates, through: tail[i - 1]?.version ?? after };
    }
    const updates = await ask(store.readUpdates({ stream, after, to: upTo, limit }));
    const through = updates.length < limit ? upTo : updates[updates.length - 1]!.version;
    checkRetained(stream, after, positioned);
    await checkStoreHeld(stream, after, updates, positioned);
    return { updates, through };
  }

  /**
   * The store hides pruned updates chunk by chunk while `oldest` moves only once the
   * whole prune is over (setOldest): a read in between would skip them unnoticed. The
   * log is gap-free, so version `after + 1` is missing only if it was pruned. A stream
   * with a horizon of its own is asked for it, as the store has it now.
   */
  async function checkStoreHeld(stream: string, after: number, read: Update[], positioned: boolean): Promise<void> {
    if (stream !== ALL && horizons) {
      const stored = await ask(store.horizon!(stream));
      if (stored > (horizons.get(stream) ?? 0)) horizons.set(stream, stored);
      return checkRetained(stream, after, positioned);
    }
    const next =
      stream === ALL ? read[0] : (await ask(store.readUpdates({ stream: ALL, after, to: after + 1, limit: 1 })))[0];
    if (next?.version === after + 1) return;
    const [first] = await ask(store.readUpdates({ stream: ALL, after, limit: 1 }));
    moveOldest(Math.max(oldest, first?.version ?? head + 1));
    checkRetained(stream, after, positioned);
  }

  let behindStore = false;
  const retired = new AbortController();

  function moveOldest(value: number): void {
    oldest = value;
    const cut = tailIndex(value);
    if (cut > 0) tail = tail.slice(cut);
  }

  return {
    epoch,
    head: () => head,
    oldest: () => oldest,
    horizon,
    async read(query) {
      return (await scan(query)).updates;
    },
    async *follow({ stream, after, batchSize = 500, signal, noPosition }: FollowOptions) {
      let position = after;
      while (!signal.aborted) {
        // A read the store holds (one that stopped answering, given up only at its own timeout) keeps no stop
        // waiting: the reader ends, the read goes on, its result or failure dropped.
        const read = await until(scan({ stream, after: position, limit: batchSize, noPosition }), Infinity, signal);
        if (read === TIMED_OUT) return;
        const { updates, through } = read;
        position = through;
        if (updates.length > 0) yield updates;
        else if (position >= head) await until(wake.promise, Infinity, signal);
      }
    },
    // Page by page: the whole state in one read takes as long as it is large, so no bound could give it up; a page
    // is given up as a read is (ask()). The pages are one consistent read, each with its version.
    async snapshot(query: ObjectQuery) {
      let version = 0;
      const objects: CurrentObject[] = [];
      for await (const page of answeredPages(store.snapshotPages(query, SNAPSHOT_PAGE))) {
        version = page.version;
        for (const object of page.objects) objects.push(object);
      }
      return { version, objects };
    },
    snapshotPages: (query: ObjectQuery, pageSize: number) => answeredPages(store.snapshotPages(query, pageSize)),
    whole: (signal) => (signal ? Promise.race([whole.promise, aborted(signal)]) : whole.promise),
    markWhole: () => whole.resolve(),
    behindStore: () => behindStore,
    setBehindStore(behind) {
      behindStore = behind;
    },
    retired: retired.signal,
    retire(reason) {
      if (!retired.signal.aborted) retired.abort(reason);
    },
    append(updates) {
      if (updates.length === 0) return;
      // A replica that follows the store and fell behind its retention skips the pruned versions: the tail must
      // stay contiguous, so it starts again (readers further back get a reset from checkRetained).
      if (updates[0]!.version !== head + 1) {
        tail = [];
        oldest = Math.max(oldest, updates[0]!.version);
      }
      tail.push(...updates);
      if (tail.length > tailSize * 1.5) tail = tail.slice(tail.length - tailSize);
      head = updates[updates.length - 1]!.version;
      const woken = wake;
      wake = Promise.withResolvers<void>();
      woken.resolve();
    },
    setOldest(value, streams) {
      moveOldest(value);
      if (streams && perStream) horizons = streams;
    },
  };
}
