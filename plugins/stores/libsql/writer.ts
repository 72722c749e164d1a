/**
 * The store's writer: what the store needs of a connection that writes, and for `file:`
 * that connection on its own thread.
 *
 * @libsql/client runs `file:` statements synchronously on the calling thread: a commit of
 * a thousand updates held the event loop 10–50 ms at a time and took a third of the main
 * thread during an initial sync. Here a Bun Worker (writer-worker.ts) owns the writer
 * connection and runs the requests in order, a batch as one transaction whose slices run
 * as they come, while the main thread goes on applying and serving; the statements it
 * runs stay prepared there. Reads stay on the main thread (their own client).
 *
 * A remote @libsql/client `Client` satisfies `Writer` as it is.
 */
import type { InStatement, Value } from "@libsql/client";
import { startThread } from "../../../sdk/thread.ts";
import { yieldToEventLoop } from "../../../sdk/priority.ts";
import { pack, type PostedStatement } from "./packed-args.ts";

/** Rows as plain records by column name (no positional access: they crossed a thread). */
export interface WriteResult {
  rows: Record<string, Value>[];
  rowsAffected: number;
}

export interface Writer {
  execute(statement: InStatement): Promise<WriteResult>;
  /** All statements in one transaction: all of them or none. */
  batch(statements: InStatement[], mode: "write"): Promise<WriteResult[]>;
  close(): void | Promise<void>;
}

export type WriterRequest =
  | { id: number; type: "open"; path: string; busyTimeoutMs: number }
  | { id: number; type: "execute"; statement: InStatement }
  /** The first statements of batch `id`, which runs (and answers) once its "batch" request comes. */
  | { id: number; type: "part"; statements: PostedStatement[] }
  | { id: number; type: "batch"; statements: PostedStatement[] }
  | { id: number; type: "close" }
  /** Fails the thread as a bug would, once the requests before it are done, inside a batch too (tests). */
  | { id: number; type: "crash" };

/** An error as SQLite or libSQL worded it: the store matches messages (GUARD_FAILURE, open errors). */
export interface WriterError {
  message: string;
  code?: string;
  rawCode?: number;
}

export type WriterReply = { id: number; results: WriteResult[] } | { id: number; error: WriterError };

/**
 * Arguments cloned per postMessage. Cloning a whole commit of 1,000 updates (~700 KiB in 12,000
 * arguments) held the event loop 3–13 ms in one go; in slices, the loop runs between them.
 */
const ARGS_PER_POST = 1_000;
/** Slices are posted back to back for this long before the event loop gets a turn (each yield delays the commit). */
const YIELD_AFTER_MS = 4;

/** The `file:` writer. */
export interface WriterThread extends Writer {
  /** For tests: the thread fails as by a bug once the requests before this are done. */
  crash(): void;
}

function toError(error: WriterError): Error {
  return Object.assign(new Error(error.message), { code: error.code, rawCode: error.rawCode });
}

/** Sets a new connection up (the PRAGMAs that hold per connection); `restarted` after a thread that failed. */
export type WriterSetup = (execute: Writer["execute"], restarted: boolean) => Promise<void>;

function startWriterWorker() {
  return startThread<WriterReply>(new URL("./writer-worker.ts", import.meta.url).href, {
    name: "store-writer",
    describe: "the store's writer thread",
    outcome(reply) {
      if ("error" in reply) throw toError(reply.error);
      return reply.results;
    },
  });
}

/**
 * Opens the database file at `path` on a new writer thread with one connection, set up by `setup`. Rejects with
 * the open error's own message; the caller words it for the operator. A thread that fails (a bug, not an SQL error)
 * fails the requests it holds; the next request starts a new one, opened and set up again, so that the store's
 * retried commit goes through rather than failing for good.
 */
export async function startWriterThread(
  path: string,
  busyTimeoutMs: number,
  setup: WriterSetup = async () => {},
): Promise<WriterThread> {
  let thread = startWriterWorker();
  let closing: Promise<void> | undefined;
  let reopening: Promise<void> | undefined;

  type Request = WriterRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;
  const send = (request: Request, id?: number) => thread.request<WriteResult[]>(request, { id });
  const execute = async (statement: InStatement) => (await send({ type: "execute", statement }))[0]!;

  async function open(restarted: boolean): Promise<void> {
    try {
      await send({ type: "open", path, busyTimeoutMs });
      await setup(execute, restarted);
    } catch (error) {
      // Not set up: the next request must open it again.
      thread.fail(error as Error);
      throw error;
    }
  }

  /** Whether a request must wait for a new thread (replaced()); posted at once otherwise, in the order of calls. */
  const stale = () => reopening !== undefined || (thread.failure !== undefined && !closing);

  /** A new thread in place of the one that failed: the one being opened, if another request started it. */
  function replaced(): Promise<void> {
    reopening ??= (async () => {
      thread.terminate();
      thread = startWriterWorker();
      await open(true);
    })().finally(() => {
      reopening = undefined;
    });
    return reopening;
  }

  const writer: WriterThread = {
    execute(statement) {
      return stale() ? replaced().then(() => execute(statement)) : execute(statement);
    },
    async batch(statements) {
      if (stale()) await replaced();
      const id = thread.nextId();
      let from = 0;
      let args = 0;
      let lastYield = performance.now();
      for (let i = 0; i < statements.length; i++) {
        const statement = statements[i]!;
        args += typeof statement === "string" ? 0 : Array.isArray(statement.args) ? statement.args.length : 1;
        if (args < ARGS_PER_POST || i === statements.length - 1) continue;
        thread.post({ type: "part", id, statements: statements.slice(from, i + 1).map(pack) } satisfies WriterRequest);
        [from, args] = [i + 1, 0];
        if (performance.now() - lastYield < YIELD_AFTER_MS) continue;
        await yieldToEventLoop();
        lastYield = performance.now();
      }
      return send({ type: "batch", statements: statements.slice(from).map(pack) }, id);
    },
    close() {
      closing ??= (async () => {
        // Queued behind any request still out, so those finish first. Then the thread is idle or gone:
        // terminate() while it is inside a libSQL call aborts the process (tests/bun-worker.test.ts).
        await send({ type: "close" }).catch(() => {});
        thread.fail(new Error("the store's writer is closed"));
        thread.terminate();
      })();
      return closing;
    },
    crash: () => thread.post({ id: 0, type: "crash" } satisfies WriterRequest),
  };

  try {
    await open(false);
  } catch (error) {
    await writer.close();
    throw error;
  }
  return writer;
}
