/**
 * A thread that closed its libsql connections collects its garbage before it ends. libsql (the binding) has no
 * `finalize()`: a connection closed with `close()` stays open, with its files and its page cache, until the statements
 * it prepared are collected, and a query's rows hold their statement until they are collected first. Ended without
 * that, the store's writer and checkpoint threads kept their connections open for the process's life: a process that
 * stopped its store and started it again kept two more each time, the writer's with its page cache (why Bun keeps
 * them, where a bare Worker doing the same does not, is not known; tests/store-libsql-connection.test.ts shows it).
 */

/** Two collections, each after a turn (so that no frame of the close still holds a statement), and one to spare. */
const COLLECTIONS = 3;

export async function releaseClosedConnections(): Promise<void> {
  for (let i = 0; i < COLLECTIONS; i++) {
    await Bun.sleep(0);
    Bun.gc(true);
  }
}
