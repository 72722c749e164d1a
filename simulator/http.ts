/**
 * Response plumbing shared by the handlers: the headers kube-apiserver sends, JSON
 * bodies, and large bodies written in chunks that respect the socket's backpressure
 * (a 150,000-pod LIST is ~600 MB; it must stream, not sit whole in memory).
 */
import type { ServerResponse } from "node:http";
import type { Status } from "./status.ts";

/** Strings are joined into chunks of about this size before each write. */
export const CHUNK_BYTES = 1 << 20;

const FLOW_SCHEMA_UID = crypto.randomUUID();
const PRIORITY_LEVEL_UID = crypto.randomUUID();

/** The headers every kube-apiserver response carries (APF identifies the flow it was classified into). */
export function kubeHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    "Audit-Id": crypto.randomUUID(),
    "Cache-Control": "no-cache, private",
    "Content-Type": "application/json",
    "X-Kubernetes-Pf-Flowschema-Uid": FLOW_SCHEMA_UID,
    "X-Kubernetes-Pf-Prioritylevel-Uid": PRIORITY_LEVEL_UID,
    ...extra,
  };
}

export function sendJson(res: ServerResponse, code: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = `${typeof body === "string" ? body : JSON.stringify(body)}\n`;
  res.writeHead(code, kubeHeaders({ ...extra, "Content-Length": String(Buffer.byteLength(text)) }));
  res.end(text);
}

export function sendStatus(res: ServerResponse, status: Status, extra: Record<string, string> = {}): void {
  const retryAfter = status.details?.retryAfterSeconds;
  sendJson(res, status.code, status, retryAfter ? { "Retry-After": String(retryAfter), ...extra } : extra);
}

/** Resolves when the response can take more data, or when the client went away. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** Writes `parts` in ~1 MB chunks, waiting for the socket whenever its buffer is full. */
export async function streamBody(res: ServerResponse, parts: Iterable<string>): Promise<void> {
  let chunk: string[] = [];
  let size = 0;
  for (const part of parts) {
    chunk.push(part);
    size += part.length;
    if (size < CHUNK_BYTES) continue;
    if (res.destroyed) return;
    const ok = res.write(chunk.join(""));
    chunk = [];
    size = 0;
    if (!ok) await drained(res);
  }
  if (!res.destroyed) res.end(chunk.join(""));
}
