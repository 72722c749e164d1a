/**
 * Worker thread of checkpointer.ts. Its own connection to the same file: libSQL is loaded
 * once per process, so SQLite's POSIX locks stay coherent across threads.
 */
import { createClient, type Client } from "@libsql/client";
import type { CheckpointerReply, CheckpointerRequest } from "./checkpointer.ts";
import { yieldCoresToEventLoop } from "../../../sdk/priority.ts";
import { releaseClosedConnections } from "./release.ts";

declare const self: Worker;

yieldCoresToEventLoop();

let client: Client | undefined;
let timer: Timer | undefined;
/** A WAL frame: its 24-byte header and a page; asked for at the first checkpoint (the page size stays). */
let frameBytes = 0;

async function checkpoint(mode: "PASSIVE" | "RESTART"): Promise<CheckpointerReply> {
  try {
    frameBytes ||= 24 + Number((await client!.execute("PRAGMA page_size")).rows[0]?.[0] ?? 4096);
    const row = (await client!.execute(`PRAGMA wal_checkpoint(${mode})`)).rows[0];
    // Its columns: busy, frames in the WAL (-1 when not in WAL mode), frames copied into the database.
    const walBytes = Math.max(0, Number(row?.[1] ?? 0)) * frameBytes;
    return { checkpointed: mode, busy: Number(row?.[0] ?? 0) !== 0, walBytes };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

// Dead, a thread keeps what it references (tests/bun-worker.test.ts): its connection, held open for the process's life,
// would keep the writer from being the file's last one at a stop, which folds the WAL in and removes it.
self.addEventListener("error", () => {
  clearInterval(timer);
  client?.close();
  Bun.gc(true);
});

self.onmessage = async (event: MessageEvent<CheckpointerRequest>) => {
  const request = event.data;
  if (request.type === "start") {
    client = createClient({ url: request.url, concurrency: 1, timeout: request.busyTimeoutMs });
    timer = setInterval(async () => self.postMessage(await checkpoint("PASSIVE")), request.intervalMs);
    // Its connection opened by a checkpoint, as that of a worker dying in its life is.
    if (request.dies)
      void checkpoint("PASSIVE").then(() =>
        setTimeout(() => {
          throw new Error("the checkpoint worker dies, as a test asked");
        }),
      );
    const { stallsMs } = request;
    if (stallsMs)
      void checkpoint("PASSIVE").then(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, stallsMs));
  } else if (request.type === "restart") {
    self.postMessage({ ...(await checkpoint("RESTART")), id: request.id });
  } else {
    clearInterval(timer);
    client?.close();
    client = undefined;
    await releaseClosedConnections();
    self.postMessage({ stopped: true } satisfies CheckpointerReply);
  }
};
