/**
 * Worker thread of writer.ts: the store's only writer connection to a `file:` store. One
 * connection (`concurrency: 1`), so PRAGMAs set through it hold for every later write (see
 * connection.ts). Requests run one at a time, in the order they came.
 */
import { createClient, type Client, type InStatement, type ResultSet } from "@libsql/client";
import type { WriteResult, WriterReply, WriterRequest } from "./writer.ts";

declare const self: Worker;

let client: Client | undefined;
let queue: Promise<void> = Promise.resolve();
/** The statements of batches whose last slice has not come yet, by request id. */
const parts = new Map<number, InStatement[]>();

/** libSQL's rows answer by position and by name; only plain records survive postMessage intact. */
function plain(result: ResultSet): WriteResult {
  const { columns } = result;
  const rows = result.rows.map((row) => {
    const record: WriteResult["rows"][number] = {};
    columns.forEach((column, i) => {
      if (!(column in record)) record[column] = row[i] ?? null;
    });
    return record;
  });
  return { rows, rowsAffected: result.rowsAffected };
}

function opened(): Client {
  if (!client) throw new Error("the store's writer is not open");
  return client;
}

async function run(request: WriterRequest): Promise<WriteResult[] | undefined> {
  switch (request.type) {
    case "part":
      parts.set(request.id, [...(parts.get(request.id) ?? []), ...request.statements]);
      return undefined;
    case "open":
      client = createClient({ url: request.url, concurrency: 1, timeout: request.busyTimeoutMs });
      return [];
    case "execute":
      return [plain(await opened().execute(request.statement as InStatement))];
    case "batch": {
      const statements = [...(parts.get(request.id) ?? []), ...request.statements];
      parts.delete(request.id);
      return (await opened().batch(statements, "write")).map(plain);
    }
    case "close":
      client?.close();
      client = undefined;
      return [];
    case "crash":
      // Nothing after this runs: the queue waits for ever, and the error is uncaught.
      return new Promise<never>(() =>
        setTimeout(() => {
          throw new Error("crash requested");
        }),
      );
  }
}

self.onmessage = (event: MessageEvent<WriterRequest>) => {
  const request = event.data;
  queue = queue.then(async () => {
    let reply: WriterReply;
    try {
      const results = await run(request);
      if (!results) return;
      reply = { id: request.id, results };
    } catch (error) {
      const { message, code, rawCode } = error as Error & { code?: unknown; rawCode?: unknown };
      reply = {
        id: request.id,
        error: {
          message: String(message ?? error),
          code: typeof code === "string" ? code : undefined,
          rawCode: typeof rawCode === "number" ? rawCode : undefined,
        },
      };
    }
    self.postMessage(reply);
  });
};
