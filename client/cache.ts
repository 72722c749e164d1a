/**
 * The local cache of one stream (uid → envelope of the current object) and the
 * informer-style callbacks it drives. Transport-free: client/sse.ts and client/nats.ts
 * feed it live updates, replays and resets.
 */
import type { Envelope } from "../protocol/envelope.ts";

export interface SyncedInfo {
  stream: string;
  epoch: string;
  /** The cache holds the stream as of this version of the log. */
  version: number;
}

export interface ResetInfo {
  stream: string;
  /** The epoch of the state that replaced the cache. */
  epoch: string;
  /** The epoch the cache held before, if any: a different one means the store was recreated. */
  previousEpoch: string | undefined;
  /** Why the server could not resume: "no-resume-point", "other-epoch", "behind-retention" or "ahead-of-log". */
  reason: string;
}

/**
 * Informer-style callbacks. Each receives envelopes whose `stream` says which stream of
 * the subscription they belong to. A callback that throws is reported to `onError` and
 * does not stop the client.
 */
export interface InformerHandlers {
  onAdd?(object: Envelope): void;
  onUpdate?(old: Envelope, current: Envelope): void;
  /**
   * `object` is the DELETED envelope (the object's final state) or, for an object found
   * gone at a reset (deleted while the consumer was away, or absent from a new epoch),
   * the last envelope the cache held: tell them apart by `object.type`.
   */
  onDelete?(object: Envelope): void;
  /** The cache is in sync with the server: after the first sync, each reset, each replay. */
  onSynced?(info: SyncedInfo): void;
  /**
   * The server could not resume the stream and sent its whole state; the cache was
   * rebuilt from it. Called before the onAdd/onUpdate/onDelete calls that bring a view
   * built from earlier callbacks to the new state: there is nothing to clear.
   */
  onReset?(info: ResetInfo): void;
  /** A connection, replay or callback problem. The client goes on by itself. */
  onError?(error: Error, stream: string): void;
}

function sameContent(a: Envelope, b: Envelope): boolean {
  // Within one epoch a version names one state; across epochs only the content tells.
  if (a.epoch === b.epoch) return a.version === b.version;
  return a.resourceVersion === b.resourceVersion && JSON.stringify(a.object) === JSON.stringify(b.object);
}

export class StreamCache {
  readonly objects = new Map<string, Envelope>();
  /** Undefined until the first sync. */
  epoch: string | undefined;
  /** The last version of the stream the cache holds (exclusive resume point). */
  position = 0;
  private staged: Map<string, Envelope> | undefined;
  private resetReason = "";
  /**
   * The subscription ended (stop(), or its NATS connection closed): no callback is made any more, not even the rest
   * of a reset's or a replay's, which run in one loop that a callback calling stop() is inside of.
   */
  private ended = false;
  readonly stream: string;
  private readonly handlers: InformerHandlers;

  constructor(stream: string, handlers: InformerHandlers) {
    this.stream = stream;
    this.handlers = handlers;
  }

  /** True once the epoch and position can be used to resume. */
  get hasPosition(): boolean {
    return this.epoch !== undefined;
  }

  /** Already held: a re-delivery after a reconnect, or an update a replay brought first. */
  isDuplicate(envelope: Envelope): boolean {
    return envelope.epoch === this.epoch && envelope.version <= this.position;
  }

  /** The envelope shows that updates of the stream were missed (the gap rule: prev > position). */
  revealsGap(envelope: Envelope): boolean {
    return envelope.epoch !== this.epoch || envelope.prev > this.position;
  }

  /** Applies a live or replayed update and moves the position to it. */
  apply(envelope: Envelope): void {
    const old = this.objects.get(envelope.uid);
    this.position = Math.max(this.position, envelope.version);
    if (envelope.type === "DELETED") {
      if (!old) return;
      this.objects.delete(envelope.uid);
      this.call("onDelete", () => this.handlers.onDelete?.(envelope));
      return;
    }
    this.objects.set(envelope.uid, envelope);
    if (old) this.call("onUpdate", () => this.handlers.onUpdate?.(old, envelope));
    else this.call("onAdd", () => this.handlers.onAdd?.(envelope));
  }

  /** Moves the position forward without an update (a replay's `through`, SSE's SYNCED). */
  advance(epoch: string, version: number): void {
    this.epoch = epoch;
    this.position = Math.max(this.position, version);
  }

  get resetting(): boolean {
    return this.staged !== undefined;
  }

  /** Starts collecting a reset's state; the cache stays as it is until `completeReset`. */
  beginReset(reason: string): void {
    this.staged = new Map();
    this.resetReason = reason;
  }

  stage(envelope: Envelope): void {
    if (envelope.type !== "DELETED") this.staged?.set(envelope.uid, envelope);
  }

  /** Drops a reset cut short (its state was incomplete); the cache keeps what it held. */
  abandonReset(): void {
    this.staged = undefined;
  }

  /** Replaces the cache with the staged state as of `version`, reporting every difference. */
  completeReset(epoch: string, version: number): void {
    const staged = this.staged ?? new Map<string, Envelope>();
    const reason = this.resetReason;
    this.staged = undefined;
    const previousEpoch = this.epoch;
    this.epoch = epoch;
    this.position = version;
    this.call("onReset", () => this.handlers.onReset?.({ stream: this.stream, epoch, previousEpoch, reason }));
    for (const [uid, old] of this.objects) {
      if (staged.has(uid)) continue;
      this.objects.delete(uid);
      this.call("onDelete", () => this.handlers.onDelete?.(old));
    }
    for (const [uid, current] of staged) {
      const old = this.objects.get(uid);
      this.objects.set(uid, current);
      if (!old) this.call("onAdd", () => this.handlers.onAdd?.(current));
      else if (!sameContent(old, current)) this.call("onUpdate", () => this.handlers.onUpdate?.(old, current));
    }
  }

  end(): void {
    this.ended = true;
  }

  reportSynced(): void {
    const { stream, epoch, position } = this;
    if (epoch !== undefined)
      this.call("onSynced", () => this.handlers.onSynced?.({ stream, epoch, version: position }));
  }

  report(error: unknown): void {
    if (this.ended) return;
    const failure = error instanceof Error ? error : new Error(String(error));
    try {
      this.handlers.onError?.(failure, this.stream);
    } catch {
      // An error handler that throws has nobody left to tell.
    }
  }

  private call(name: string, callback: () => void): void {
    if (this.ended) return;
    try {
      callback();
    } catch (error) {
      this.report(
        new Error(`${name} callback threw: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        }),
      );
    }
  }
}

/** What subscribeSse and subscribeNats return. */
export interface Subscription {
  /**
   * Resolves once every stream has synced once, or once the subscription ends before that (stop(); over NATS, its
   * connection closed): never rejects (errors go to onError), and never leaves an `await` hanging.
   */
  readonly synced: Promise<void>;
  /** The cache of one of the subscription's streams: uid → envelope of the current object. */
  objects(stream: string): ReadonlyMap<string, Envelope>;
  /**
   * Closes what the subscription opened (not a NatsConnection you passed in). Safe twice. No callback comes once it
   * is called, from a callback too (the rest of a reset's calls are not made).
   */
  stop(): Promise<void>;
}

/** One cache per stream, and the promise that all of them synced once. */
export class StreamCaches {
  readonly caches: StreamCache[];
  readonly synced: Promise<void>;
  private readonly waiting: Set<string>;
  private readonly allSynced = Promise.withResolvers<void>();

  /** `streams` as the subscription's options checked them (client/options.ts): stream names, each once. */
  constructor(streams: string[], handlers: InformerHandlers) {
    this.caches = streams.map((stream) => new StreamCache(stream, handlers));
    this.waiting = new Set(this.caches.map((c) => c.stream));
    this.synced = this.allSynced.promise;
  }

  /** Reports a stream in sync (after its cache moved). */
  markSynced(cache: StreamCache): void {
    cache.reportSynced();
    this.waiting.delete(cache.stream);
    if (this.waiting.size === 0) this.allSynced.resolve();
  }

  /**
   * The subscription ended: no callback comes any more, and whoever awaits `synced` goes on, synced or not (`onSynced`
   * tells which streams did).
   */
  end(): void {
    for (const cache of this.caches) cache.end();
    this.allSynced.resolve();
  }

  objects(stream: string): ReadonlyMap<string, Envelope> {
    const cache = this.caches.find((c) => c.stream === stream);
    if (!cache) throw new RangeError(`not a stream of this subscription: ${stream}`);
    return cache.objects;
  }
}
