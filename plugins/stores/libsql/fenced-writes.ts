/**
 * The libSQL store's writes (store.ts), apart from its reads: the one writer's view of the log (head, term, stream
 * ids) and the queue its writes go through. A commit hands out versions and stream ids from that view, so writes run
 * one at a time, and a commit or a prune is refused in its own transaction once another writer moved the head or
 * raised the term (a replica that leads now, `ha`): the log never forks.
 */
import type { InStatement } from "@libsql/client";
import { StoreReplacedError, WriterFencedError, type CommitBatch, type StoreState } from "../../../sdk/contract.ts";
import type { Histogram, Logger } from "../../../sdk/telemetry.ts";
import { checkContiguous, commitStatements, GUARD_FAILURE, StreamIds, TERM_GUARD_SQL } from "./commit.ts";
import type { Connections } from "./connection.ts";
import { DELETE_UNPINNED, RAISE_HORIZON } from "./prune.ts";
import { loadState, loadStreamIds } from "./read.ts";

/** The store's own tables are gone: it was emptied (wiped, restored empty) while this process wrote to it. */
function schemaGone(error: unknown): boolean {
  return /no such table: (meta|updates|objects|streams)\b/.test((error as Error | undefined)?.message ?? "");
}

/**
 * A store emptied under its writer is no longer that writer's: fenced as by another writer (isWriterFenced), so that
 * it commits nothing more; with `ha` it then follows, finds the store's epoch gone and stops (checkSameStore).
 */
class StoreEmptiedError extends WriterFencedError {
  constructor(term: number) {
    super(term, 0);
    this.message = "commit refused: the store was emptied under this writer (its tables are gone)";
  }
}

/** Another writer raised the store's term between this one's read of it and its own raise (Store.lead's check). */
class TermTakenError extends WriterFencedError {
  constructor(read: number, stored: number) {
    super(read, stored);
    this.message = `the store's term went from ${read} to ${stored} as this writer took it; another leads`;
  }
}

function isEmpty(batch: CommitBatch): boolean {
  return batch.updates.length === 0 && batch.resumePoints.size === 0 && !batch.whole;
}

export class FencedWrites {
  /** Highest committed version, as this (only) writer left it. */
  private committedHead = 0;
  /** The term this process writes under: the store's when it opened, raised by lead(). */
  private term = 0;
  private streamIds = new StreamIds([]);
  /** Writes run one at a time: the gap check reads the head, and the file writer has one connection. */
  private writes: Promise<unknown> = Promise.resolve();
  /** The writes that save something (all but lead()), up to the last one queued: what a close waits for. */
  private saves: Promise<unknown> = Promise.resolve();
  /** Set once a refused write found the store's head moved in this writer's own term: the store is another now. */
  private replacedBy: StoreReplacedError | undefined;

  constructor(
    /** The store's connections; throws while it is not started. */
    private readonly connections: () => Connections,
    private readonly logger: Logger,
    /** `kubemeta_store_commit_seconds`. */
    private readonly commitSeconds: Histogram,
    /** Throws when the store must not be written any more (its file replaced: file-identity.ts). */
    private readonly guard: () => void = () => {},
    /** Told once when a refused write finds the store replaced (StoreContext.replaced). */
    private readonly replaced: (error: StoreReplacedError) => void = () => {},
  ) {}

  get head(): number {
    return this.committedHead;
  }

  /**
   * Resolves once the writes queued so far that save something are done. Not a lead() still waiting (with `ha`, a
   * term's start given up: a path that drops packets holds it until store.timeout): it saves nothing a close could
   * lose, and a shutdown would wait for it past shutdownTimeout.
   */
  settled(): Promise<unknown> {
    return this.saves;
  }

  /** Runs `work` once the writes queued before it are done; `saves`: unless it is lead(). */
  async serially<T>(work: (c: Connections) => Promise<T>, saves = true): Promise<T> {
    const c = this.connections();
    const run = this.writes.then(async () => {
      this.guard();
      if (this.replacedBy) throw this.replacedBy;
      await c.beforeWrite();
      return work(c);
    });
    this.writes = run.catch(() => {});
    if (saves) this.saves = this.writes;
    return run;
  }

  /** The state as stored when the store starts, and its term: this process writes under it until lead(). */
  async start(c: Connections): Promise<StoreState> {
    const state = await this.load(c);
    this.term = Number((await c.reader.execute("SELECT term FROM meta WHERE id = 1")).rows[0]?.term ?? 0);
    return state;
  }

  /** Store.lead: the term raised; with `check`, from the term read before it only. */
  lead(check?: () => void | Promise<void>): Promise<StoreState> {
    return this.serially(async (c) => {
      if (check) {
        const read = await this.storedTerm(c);
        await check();
        const { rows } = await c.writer.execute({
          sql: "UPDATE meta SET term = term + 1 WHERE id = 1 AND term = ? RETURNING term",
          args: [read],
        });
        if (rows.length === 0) throw new TermTakenError(read, await this.storedTerm(c));
        this.term = Number(rows[0]?.term);
      } else {
        const { rows } = await c.writer.execute("UPDATE meta SET term = term + 1 WHERE id = 1 RETURNING term");
        this.term = Number(rows[0]?.term);
      }
      const state = await this.load(c);
      this.logger.info("writing to the store", { term: this.term, head: this.committedHead });
      return state;
    }, false);
  }

  commit(batch: CommitBatch): Promise<void> {
    return this.serially(async (c) => {
      checkContiguous(batch, this.committedHead);
      const groups = commitStatements(batch, this.committedHead, this.term, this.streamIds);
      const started = performance.now();
      try {
        await (isEmpty(batch) ? this.checkOwn(c) : this.write(c, groups));
        this.streamIds.settle(true);
      } catch (error) {
        const refused = (error as Error).message?.includes(GUARD_FAILURE);
        // A remote commit can land and still be reported failed (the connection cut after COMMIT):
        // its retry finds exactly this batch stored, which is success, not a second writer.
        if (refused && (await this.alreadyStored(c, batch))) {
          this.streamIds.settle(true);
        } else {
          this.streamIds.settle(false);
          throw refused ? await this.refusal(c) : schemaGone(error) ? new StoreEmptiedError(this.term) : error;
        }
      }
      this.commitSeconds.observe((performance.now() - started) / 1000);
      this.committedHead += batch.updates.length;
    });
  }

  /**
   * Retention's delete (prune.ts, PruneTarget), fenced like a commit: a deposed writer's retention (its own policy)
   * must not prune the new one's log.
   */
  deleteThrough(after: number, through: number): Promise<number> {
    return this.serially(async (c) => {
      try {
        const [, deleted] = await c.writer.batch(
          [
            { sql: TERM_GUARD_SQL, args: [this.term] },
            { sql: DELETE_UNPINNED, args: [after, through] },
            { sql: RAISE_HORIZON, args: [through] },
          ],
          "write",
        );
        return deleted!.rowsAffected;
      } catch (error) {
        throw (error as Error).message?.includes(GUARD_FAILURE) ? await this.refusal(c) : error;
      }
    });
  }

  /**
   * One transaction. On `file:` it runs on the writer's thread (libsql/writer.ts), so even a big
   * batch leaves the event loop free.
   */
  private async write(c: Connections, groups: InStatement[][]): Promise<void> {
    await c.writer.batch(groups.flat(), "write");
  }

  /**
   * Why a guarded write was refused: a later writer's term (fenced), or a head moved in this writer's own term, which
   * no writer does (each raises the term first): the store is not the one it wrote, a copy restored in place or
   * another database at its address. Nothing more is written to it (a commit would number the copy's versions after
   * its head again), and the host is told, as for a `file:` store's file replaced.
   */
  private async refusal(c: Connections): Promise<Error> {
    const row = (await c.writer.execute("SELECT head, term FROM meta WHERE id = 1")).rows[0];
    const stored = { head: Number(row?.head), term: Number(row?.term) };
    if (stored.term !== this.term) return new WriterFencedError(this.term, stored.term);
    this.replacedBy ??= new StoreReplacedError(
      `the store's head is ${stored.head}, not ${this.committedHead} as this process left it, in its own term ` +
        `${this.term}: the store was replaced under it (a copy restored in place, or another database at its address)`,
    );
    this.replaced(this.replacedBy);
    return this.replacedBy;
  }

  /**
   * An empty batch's commit (a quiet leader's check, core/commit-queue.ts): the store's head and term read through the
   * writer's connection, refused as a guarded write would be unless they are this writer's. A read, not the guard's
   * write: a store that hangs or another writer is found as soon, and a quiet cluster writes nothing (a remote store
   * bills the rows written; a file's WAL would take a frame each check).
   */
  private async checkOwn(c: Connections): Promise<void> {
    const row = (await c.writer.execute("SELECT head, term FROM meta WHERE id = 1")).rows[0];
    if (Number(row?.head) !== this.committedHead || Number(row?.term) !== this.term) throw await this.refusal(c);
  }

  /** The store's term as it is now, read through the writer's connection: what a conditional raise compares. */
  private async storedTerm(c: Connections): Promise<number> {
    return Number((await c.writer.execute("SELECT term FROM meta WHERE id = 1")).rows[0]?.term ?? 0);
  }

  /** The state as stored, and the writer's view of it brought in line. */
  private async load(c: Connections): Promise<StoreState> {
    const state = await loadState(c.reader);
    this.committedHead = state.head;
    this.streamIds = new StreamIds(await loadStreamIds(c.reader));
    return state;
  }

  /** True when the store's head is the batch's last version and that version is the batch's last update. */
  private async alreadyStored(c: Connections, batch: CommitBatch): Promise<boolean> {
    const last = batch.updates[batch.updates.length - 1];
    if (!last) return false;
    const { rows } = await c.writer.execute({
      sql:
        "SELECT u.kind, u.uid, u.type FROM meta JOIN updates AS u ON u.version = meta.head " +
        "WHERE meta.id = 1 AND meta.head = ?",
      args: [last.version],
    });
    const row = rows[0];
    return row !== undefined && row.kind === last.kind && row.uid === last.uid && row.type === last.type;
  }
}
