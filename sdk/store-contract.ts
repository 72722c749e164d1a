/**
 * The store's part of the plugin contract (contract.ts, which exports it too): what a store plugin implements, the
 * state it opens with, the queries it answers, and how it refuses a writer that another has fenced out.
 */
import type { PluginContext } from "./contract.ts";
import type { CurrentObject, Update } from "./model.ts";

/** What the store knows when it opens. */
export interface StoreState {
  /** Random id created with the store; a wiped store has a new one. */
  epoch: string;
  /** Highest committed version, 0 when empty. */
  head: number;
  /** Lowest version still in the log; head + 1 when the log is empty. */
  oldest: number;
  /** Last committed version of each stream (`shared`, `node/<name>`). */
  streamHeads: Map<string, number>;
  /** Committed resume points of sources, by resource key. */
  resumePoints: Map<string, string>;
  /**
   * Whether the store's objects are the whole state: a first sync of the sources ended once in this epoch (a commit
   * with `whole`). A new or wiped store starts without it. A store that does not record it leaves it out; the host
   * then counts the objects whole when the store held updates as it opened (head > 0), and with `ha` at once.
   */
  whole?: boolean;
}

/** One transaction: updates in version order, contiguous from the last commit, and resume points. */
export interface CommitBatch {
  updates: Update[];
  /** Content digest of each update's object, parallel to `updates` (kept with the current object). */
  digests: number[];
  resumePoints: Map<string, string>;
  /**
   * Set on the commit that ends the sources' first sync (with what was pending then, or alone): the store records,
   * in the same fenced transaction, that its objects are whole (StoreState.whole, position). Sent only to a store
   * whose StoreState has `whole`.
   */
  whole?: boolean;
}

export interface ObjectQuery {
  /** `all`, `shared` or `node/<name>`; omitted means all. */
  stream?: string;
  kind?: string;
  namespace?: string;
  node?: string;
  uids?: string[];
}

/** Enough of a current object to diff against and to route a tombstone. */
export interface ObjectDigest {
  kind: string;
  uid: string;
  digest: number;
  stream: string | null;
}

export interface UpdateQuery {
  /** `all`, `shared` or `node/<name>`. */
  stream: string;
  /** Exclusive lower bound. */
  after: number;
  /** Inclusive upper bound, if any. */
  to?: number;
  limit: number;
}

export interface RetentionPolicy {
  /** Updates older than this are pruned (ms); 0 keeps them by age. */
  maxAgeMs: number;
  /** At most this many updates are kept; 0 keeps them by count. */
  maxUpdates: number;
}

export interface Store {
  /** Opens (creating or migrating as needed) and returns what the store holds. */
  start(): Promise<StoreState>;
  /**
   * Closes the store. `deadline` (ms since the epoch): by when the host's shutdown needs it closed (shutdownTimeout's
   * end); past it the host exits 1, naming the store's close. A store that waits there for what may not answer (a
   * thread of its own on a stalled machine) stops waiting in time, leaves what it must (saying so), and closes the
   * rest by then. Undefined when the host sets no bound (a start that failed, `--check`): the store's own waits hold.
   */
  stop(deadline?: number): Promise<void>;
  /**
   * Called once as the host's shutdown begins, before the sources stop and what they sent last is committed, with
   * stop's `deadline`. A store whose commits wait for what may not answer (a thread of its own on a stalled machine)
   * bounds those waits from now on, one under way too, so that that commit and the steps after it (the sinks' drain,
   * stop) end by the deadline; stop() alone comes too late for them. What answers in time is still waited for.
   */
  stopping?(deadline: number): void;
  /**
   * `--check`, instead of start() and stop(): proves the store usable, making it if new, and leaves one that exists as
   * it is (its migrations are a start's: a kubemeta of its earlier schema, still serving it or rolled back to, could
   * not open it after them), then closes it. Returns what a start would change, said as the check's warnings. A store
   * without it is started and stopped.
   */
  check?(): Promise<string[]>;
  /**
   * Makes this process the store's one writer: raises the store's term, so that from now on every commit of an
   * earlier writer (a deposed leader) is refused, and returns the state as it is after that. The host calls it
   * before its first commit, and again each time this replica becomes the leader. With `ha` the host gives up a
   * call left unanswered for `ha.renewDeadline` (or when it stops), and stops the store without waiting for it: stop()
   * should not wait for it either (it saves nothing). With `check` (the host's, with `ha`: it throws once this
   * replica's Lease is not surely held) the store reads its term, then awaits `check`, then raises the term only if
   * it is still the one read, in one statement, else throws WriterFencedError and raises nothing: a call held up
   * after the check (a pause, a request slow on its way) cannot raise the term past a next leader's, which would
   * fence it once. A store that ignores `check` leaves that window open.
   */
  lead(check?: () => void | Promise<void>): Promise<StoreState>;
  /**
   * Head and oldest version as stored now: how a replica that does not write follows the log. With `epoch` (the
   * store's now; "" for a store emptied of kubemeta's schema) a replica learns that the store under it was replaced
   * (wiped, restored, another database behind the same address): its log is of another epoch, and it starts over.
   * With `whole` (StoreState.whole, as stored now) a replica learns that the leader's first sync is over.
   */
  position(): Promise<{ head: number; oldest: number; epoch?: string; whole?: boolean }>;
  /**
   * Commits the batch if this process is still the writer (its term is the store's, checked in the same
   * transaction); otherwise throws WriterFencedError and writes nothing. A batch with nothing in it is a commit all
   * the same, the term checked (libSQL's by a read: it writes nothing): it is how a writer with nothing to commit finds
   * a store that hangs, or another writer.
   */
  commit(batch: CommitBatch): Promise<void>;
  readUpdates(query: UpdateQuery): Promise<Update[]>;
  /** Current objects matching the query, with the version they are consistent with. */
  snapshot(query: ObjectQuery): Promise<{ version: number; objects: CurrentObject[] }>;
  /** The same, at most `pageSize` objects at a time from one consistent read (see CommittedLog.snapshotPages). */
  snapshotPages(query: ObjectQuery, pageSize: number): AsyncIterable<{ version: number; objects: CurrentObject[] }>;
  /** Digests of every current object (loaded once at start). */
  digests(): Promise<ObjectDigest[]>;
  cursor(name: string): Promise<number | undefined>;
  saveCursor(name: string, version: number): Promise<void>;
  /**
   * Prunes the log; returns the new oldest version. Never the newest update (the head), whatever the policy's age:
   * after a quiet spell longer than it, a leader's start reads that update's time (the floor of the next update's,
   * core/update-time.ts), and a clock stepped back meanwhile would otherwise stamp the next update before the last
   * one consumers saw. (`maxUpdates`, when not 0, keeps at least the head too.) Fenced like a commit: once another
   * writer leads (a later term), throws WriterFencedError and deletes nothing, so that a deposed replica's retention
   * cannot prune the new one's log.
   * Once `signal` aborts (kubemeta stops) it may end early, leaving the log whole from the oldest it returns: the next
   * run goes on (a long prune, after retention was lowered, must not hold a shutdown).
   */
  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<{ removed: number; oldest: number }>;
  /**
   * Each stream's horizon: the last version of that stream's updates that retention removed (streams it removed none
   * of are absent). A reader of one stream may go on from its stream's horizon, below the log's (`oldest - 1`), when
   * `readUpdates` of that stream returns every update of it kept there: a quiet stream's readers then miss nothing
   * retention removed and need no reset. A store without it: every stream's horizon is the log's.
   */
  horizons?(): Promise<Map<string, number>>;
  /** One stream's horizon as stored now (0 when none of its updates were removed); with `horizons`. */
  horizon?(stream: string): Promise<number>;
  /**
   * `main.ts new-epoch`, run by an operator after restoring an older copy of the store: its versions after the copy's
   * head would be issued again, for other updates, under the epoch consumers hold positions of. Gives the store a new
   * random epoch and raises its term (a writer still running is fenced), its log, versions and cursors kept, so that
   * every consumer resets on its next resume. Called instead of `start()`, in a process that serves nothing. Throws,
   * changing nothing, where it can tell that another process has the store open. A store without it: the command
   * says that its type cannot.
   */
  newEpoch?(): Promise<EpochChange>;
}

/** What Store.newEpoch changed. */
export interface EpochChange {
  /** The epoch the store had. */
  previous: string;
  /** The epoch it has now. */
  epoch: string;
  /** Its head, kept: the next commit is head + 1. */
  head: number;
}

export interface StoreContext extends PluginContext {
  /**
   * For a store that finds, while it runs, that it is no longer the store it opened (its file deleted, or another in
   * its place): what it would commit is lost, and what a new connection reads is another store's. It tells the host,
   * once, and throws the same StoreReplacedError from its commits from then on; the host logs it and stops, exit 1, so
   * that a restart opens what is there now (consumers reset when that is another epoch). Absent where nothing serves
   * from the store (`--check`).
   */
  replaced?(error: StoreReplacedError): void;
}

/**
 * Thrown by `Store.commit` when another process has become the store's writer since this one's `lead()`: this
 * process was deposed (a replica that lost its Lease, or paused past it) and must stop writing. Recognise it with
 * isWriterFenced.
 */
export class WriterFencedError extends Error {
  constructor(
    readonly term: number,
    readonly storedTerm: number,
  ) {
    super(`commit refused: this writer's term ${term} is no longer the store's (term ${storedTerm}); another leads`);
    this.name = "WriterFencedError";
  }
}

/**
 * By name, not `instanceof`: a store plugin outside the repository may throw the class of another copy of
 * kubemeta's SDK than the host's.
 */
export function isWriterFenced(error: unknown): error is WriterFencedError {
  return (error as Error | undefined)?.name === "WriterFencedError";
}

/**
 * The store is no longer the one it opened (StoreContext.replaced); its message names what changed. Recognise it with
 * isStoreReplaced.
 */
export class StoreReplacedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreReplacedError";
  }
}

/** By name, as isWriterFenced. */
export function isStoreReplaced(error: unknown): boolean {
  return (error as Error | undefined)?.name === "StoreReplacedError";
}

/**
 * Thrown by `Store.start` for a store a later kubemeta has migrated past the schema this one knows: only that release
 * or a later one can open it. Recognise it with isStoreTooNew (by name, as isWriterFenced).
 */
export class StoreTooNewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreTooNewError";
  }
}

/** The error, or one it was caused by (a store's start says which store in a message of its own). */
export function isStoreTooNew(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++)
    if (cause.name === "StoreTooNewError") return true;
  return false;
}
