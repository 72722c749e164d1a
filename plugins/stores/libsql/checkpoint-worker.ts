/**
 * Worker thread of checkpointer.ts. Its own connection to the same file: libSQL is loaded
 * once per process, so SQLite's POSIX locks stay coherent across threads.
 */
import { createClient, type Client } from "@libsql/client";
import type { CheckpointerReply, CheckpointerRequest } from "./checkpointer.ts";
import { yieldCoresToEventLoop } from "../../../sdk/priority.ts";

declare const self: Worker;

yieldCoresToEventLoop();

let client: Client | undefined;
let timer: Timer | undefined;

async function checkpoint(mode: "PASSIVE" | "TRUNCATE"): Promise<CheckpointerReply> {
  try {
    const row = (await client!.execute(`PRAGMA wal_checkpoint(${mode})`)).rows[0];
    return { checkpointed: mode, busy: Number(row?.[0] ?? 0) !== 0 };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

self.onmessage = async (event: MessageEvent<CheckpointerRequest>) => {
  const request = event.data;
  if (request.type === "start") {
    client = createClient({ url: request.url, concurrency: 1, timeout: request.busyTimeoutMs });
    timer = setInterval(async () => self.postMessage(await checkpoint("PASSIVE")), request.intervalMs);
  } else if (request.type === "truncate") {
    self.postMessage(await checkpoint("TRUNCATE"));
  } else {
    clearInterval(timer);
    client?.close();
    self.postMessage({ stopped: true } satisfies CheckpointerReply);
  }
};
