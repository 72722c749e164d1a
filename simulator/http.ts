/**
 * Response plumbing shared by the handlers: the headers kube-apiserver sends, JSON
 * bodies, and large bodies written in chunks that respect the socket's backpressure
 * (a 150,000-pod LIST is ~600 MB; it must stream, not sit whole in memory), gzipped
 * as kube-apiserver gzips them for a client that asks.
 */
import type { ServerResponse } from "node:http";
import type { Writable } from "node:stream";
import { createGzip } from "node:zlib";
import type { Status } from "./status.ts";

/** Strings are joined into chunks of about this size before each write. */
export const CHUNK_BYTES = 1 << 20;

/**
 * kube-apiserver's response compression (the APIResponseCompression gate, on by default since v1.16; its
 * responsewriters/writers.go): a body whose first 128 KiB are written is gzipped at level 1 for a client whose
 * Accept-Encoding lists gzip. Watches, streaming lists included, are never compressed.
 */
export const GZIP_THRESHOLD_BYTES = 128 * 1024;
const GZIP_LEVEL = 1;

/** Whether an Accept-Encoding header lists gzip, read token by token as kube-apiserver reads it. */
export function acceptsGzip(header: string | undefined): boolean {
  return header?.split(",").some((token) => token.trim() === "gzip") ?? false;
}

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

/** Resolves when `out` (the response, or the gzip in front of it) can take more data, or the client went away. */
export function drained(res: ServerResponse, out: Writable = res): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off("drain", done);
      res.off("close", done);
      resolve();
    };
    out.on("drain", done);
    res.on("close", done);
  });
}

/**
 * Sends a 200 with `headers` and `parts` as its body in ~1 MB chunks, waiting for the socket whenever its buffer is
 * full; gzipped when `gzip` (the client accepts it) and the body passes GZIP_THRESHOLD_BYTES. Resolves to whether it
 * was gzipped, once the last chunk is written.
 */
export async function streamBody(
  res: ServerResponse,
  headers: Record<string, string>,
  parts: Iterable<string>,
  gzip: boolean,
): Promise<boolean> {
  let out: Writable | undefined;
  let compressed = false;
  const open = (compress: boolean): Writable => {
    compressed = compress;
    if (!compress) {
      res.writeHead(200, headers);
      return res;
    }
    res.writeHead(200, { ...headers, "Content-Encoding": "gzip", Vary: "Accept-Encoding" });
    const gzipped = createGzip({ level: GZIP_LEVEL });
    gzipped.pipe(res);
    res.once("close", () => gzipped.destroy());
    return gzipped;
  };
  let chunk: string[] = [];
  let size = 0;
  for (const part of parts) {
    chunk.push(part);
    size += part.length;
    if (size < CHUNK_BYTES) continue;
    if (res.destroyed) return compressed;
    out ??= open(gzip);
    const ok = out.write(chunk.join(""));
    chunk = [];
    size = 0;
    if (!ok) await drained(res, out);
  }
  out ??= open(gzip && size > GZIP_THRESHOLD_BYTES);
  if (!res.destroyed) out.end(chunk.join(""));
  return compressed;
}
