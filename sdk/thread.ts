/**
 * A Bun Worker that answers requests by id, as the built-in plugins run their threads (the
 * kubernetes source's parse threads, the libSQL store's writer). It handles what Bun leaves
 * to the caller (tests/bun-worker.test.ts):
 * - the worker is referenced only while a request is out: an idle thread must not keep the
 *   process alive, but an unreferenced one lets it exit (code 0) under an awaited reply;
 * - a crash (an uncaught error, an unhandled rejection, process.exit in the worker) ends in
 *   `close`, whose code says nothing reliable: any end not asked for fails every request
 *   out, and every later one, at once.
 */

export interface ThreadOptions<Reply extends { id: number }> {
  /** The thread's name, as `ps -L` and /proc show it. */
  name: string;
  /** What the failures say it is: "the store's writer thread" fails as "the store's writer thread stopped". */
  describe: string;
  /** A reply's value; throws the request's error. */
  outcome(reply: Reply): unknown;
}

export interface Thread {
  /** Posts `message` with `id` (a new one unless given, see nextId) and resolves with its reply's outcome. */
  request<T>(message: object, options?: { id?: number; transfer?: ArrayBuffer[] }): Promise<T>;
  /** Posts what needs no reply (part of a later request). Throws once the thread has failed. */
  post(message: object, transfer?: ArrayBuffer[]): void;
  /** An id for a request whose parts are posted first. */
  nextId(): number;
  /** Why the thread takes no more requests, once it does not. */
  readonly failure: Error | undefined;
  /** Fails every request out and every later one with `error` (the thread is being closed, or died). */
  fail(error: Error): void;
  terminate(): void;
}

interface Waiting {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * Bun formats a worker's uncaught error into ErrorEvent.message with the source lines around it; a log wants the
 * line that names the error (`error: …`, `TypeError: …`).
 */
function crashReason(event: ErrorEvent): string {
  const message = String(event.message ?? event.error);
  return /^(?:error|[A-Z]\w*Error): .*$/m.exec(message)?.[0] ?? message;
}

export function startThread<Reply extends { id: number }>(url: string, options: ThreadOptions<Reply>): Thread {
  const worker = new Worker(url, { name: options.name });
  worker.unref();
  const waiting = new Map<number, Waiting>();
  let lastId = 0;
  let failure: Error | undefined;

  function fail(error: Error): void {
    failure ??= error;
    const failed = [...waiting.values()];
    waiting.clear();
    worker.unref();
    for (const request of failed) request.reject(failure);
  }

  worker.addEventListener("message", (event: MessageEvent<Reply>) => {
    const reply = event.data;
    const request = waiting.get(reply.id);
    if (!request) return;
    waiting.delete(reply.id);
    if (waiting.size === 0) worker.unref();
    try {
      request.resolve(options.outcome(reply));
    } catch (error) {
      request.reject(error as Error);
    }
  });
  worker.addEventListener("error", (event) => fail(new Error(`${options.describe} failed: ${crashReason(event)}`)));
  worker.addEventListener("close", () => fail(new Error(`${options.describe} stopped`)));

  return {
    request<T>(message: object, { id = ++lastId, transfer = [] }: { id?: number; transfer?: ArrayBuffer[] } = {}) {
      if (failure) return Promise.reject(failure);
      return new Promise<T>((resolve, reject) => {
        if (waiting.size === 0) worker.ref();
        waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
        worker.postMessage({ ...message, id }, transfer);
      });
    },
    post(message, transfer = []) {
      if (failure) throw failure;
      worker.postMessage(message, transfer);
    },
    nextId: () => ++lastId,
    get failure() {
      return failure;
    },
    fail,
    terminate() {
      fail(new Error(`${options.describe} stopped`));
      worker.terminate();
    },
  };
}
