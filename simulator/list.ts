/**
 * LIST with `limit`/`continue` as etcd3's store serves it: every page of one list
 * comes from the snapshot taken for the first page (list resourceVersion stays that
 * of page one), tokens are base64url JSON `{"v","rv","start"}`, and a token whose
 * snapshot is gone gets 410 Expired with a fresh "inconsistent" token (rv -1) that
 * continues from the same key over the current state. A custom resource's list is
 * unstructured: keys sorted, `metadata.continue` always present (see cr.FooBarList.json).
 */
import type { ServerResponse } from "node:http";
import { kubeHeaders, streamBody } from "./http.ts";
import type { ListOptions } from "./options.ts";
import { apiVersionOf, type ResourceType } from "./resource-types.ts";
import { badRequest, continueExpired, listTooOld, tooLargeResourceVersion, type Status } from "./status.ts";
import { itemJson, sortedJson } from "./serialize.ts";
import type { ObjectStore } from "./store.ts";
import type { Entry } from "./table.ts";
import { matches, type WatchFilter } from "./watch.ts";

interface ContinueKey {
  rv: number;
  /** Key relative to the list's prefix (`<ns>/` for a namespaced list), to start strictly after. */
  start: string;
}

function encodeContinue(key: ContinueKey): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv: key.rv, start: key.start })).toString("base64url");
}

function decodeContinue(token: string): ContinueKey | Status {
  try {
    const key = JSON.parse(Buffer.from(token, "base64url").toString()) as {
      v?: unknown;
      rv?: unknown;
      start?: unknown;
    };
    if (key.v !== "meta.k8s.io/v1")
      return badRequest(
        `continue key is not valid: continue key is not valid: server does not recognize this encoded key`,
      );
    if (typeof key.rv !== "number" || typeof key.start !== "string" || key.start === "")
      return badRequest(
        "continue key is not valid: continue key is not valid: " +
          "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
      );
    return { rv: key.rv, start: key.start };
  } catch {
    return badRequest("continue key is not valid: illegal base64 data at input byte 0");
  }
}

/**
 * What a page after the first answers once its token's snapshot is gone: 410 Expired carrying a fresh "inconsistent"
 * token (rv -1) that continues from the same key over the current state. Also the Status of an injected 410 there.
 */
export function expiredContinue(token: string): Status {
  const key = decodeContinue(token);
  return "kind" in key ? key : continueExpired(encodeContinue({ rv: -1, start: key.start }));
}

const snapshotKey = (type: ResourceType, rv: number) => `${apiVersionOf(type)}/${type.resource}@${rv}`;

/** The snapshots behind outstanding continue tokens; dropping one is etcd compacting its revision. */
export class ListSnapshots {
  private readonly snapshots = new Map<string, { entries: Entry[]; takenAt: number }>();

  constructor(private readonly ttlMs: number) {}

  keep(type: ResourceType, rv: number, entries: Entry[]): void {
    const now = Date.now();
    for (const [key, snapshot] of this.snapshots) if (now - snapshot.takenAt > this.ttlMs) this.snapshots.delete(key);
    const key = snapshotKey(type, rv);
    if (!this.snapshots.has(key)) this.snapshots.set(key, { entries, takenAt: now });
  }

  find(type: ResourceType, rv: number): Entry[] | undefined {
    const snapshot = this.snapshots.get(snapshotKey(type, rv));
    if (!snapshot || Date.now() - snapshot.takenAt > this.ttlMs) return undefined;
    return snapshot.entries;
  }

  expireAll(): void {
    this.snapshots.clear();
  }
}

export interface ListRequest {
  type: ResourceType;
  filter: WatchFilter;
  options: ListOptions;
  /** The effective page size after the server's cap; 0 = unpaged. */
  limit: number;
  /** The client accepts gzip and the server compresses responses. */
  gzip: boolean;
}

/** Index of the first entry whose key is >= `key`. */
function lowerBound(entries: Entry[], key: string): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.key < key) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Picks the snapshot and start position, or the Status to answer instead. */
function resolvePage(
  store: ObjectStore,
  snapshots: ListSnapshots,
  request: ListRequest,
): { rv: number; entries: Entry[]; start: string } | Status {
  const { type, options } = request;
  if (options.continueToken) {
    const key = decodeContinue(options.continueToken);
    if ("kind" in key) return key;
    if (key.rv === -1) return { ...store.snapshot(type), start: key.start };
    const entries = snapshots.find(type, key.rv);
    if (!entries) return expiredContinue(options.continueToken);
    return { rv: key.rv, entries, start: key.start };
  }
  const current = store.resourceVersion();
  if (options.resourceVersion && options.resourceVersion !== "0") {
    const requested = Number(options.resourceVersion);
    if (!Number.isInteger(requested)) return badRequest(`invalid resource version "${options.resourceVersion}"`);
    if (requested > current) return tooLargeResourceVersion(requested, current);
    // This store keeps only the latest state, so it serves every older resourceVersion
    // as NotOlderThan, except an explicit Exact read, which gets the 410 etcd gives once
    // the revision is compacted. (A real server also reads legacy `limit` + RV exactly.)
    if (options.resourceVersionMatch === "Exact" && requested < current) return listTooOld();
  }
  return { ...store.snapshot(type), start: "" };
}

/**
 * What a list body has before and after its items: a built-in type's in the Go struct's field order, a custom
 * resource's with sorted keys and `continue` even when empty, as the unstructured list is written.
 */
function listFrame(
  type: ResourceType,
  resourceVersion: string,
  token: string | undefined,
  remainingItemCount: number | undefined,
): [string, string] {
  const apiVersion = apiVersionOf(type);
  if (type.custom) {
    const metadata = sortedJson({ continue: token ?? "", remainingItemCount, resourceVersion });
    return [`{"apiVersion":"${apiVersion}","items":[`, `],"kind":"${type.kind}List","metadata":${metadata}}\n`];
  }
  const metadata = JSON.stringify({ resourceVersion, continue: token, remainingItemCount });
  return [`{"kind":"${type.kind}List","apiVersion":"${apiVersion}","metadata":${metadata},"items":[`, "]}\n"];
}

/** Serves one LIST page (resolving to whether it went gzipped), or returns the Status to send when it cannot. */
export function serveList(
  res: ServerResponse,
  store: ObjectStore,
  snapshots: ListSnapshots,
  request: ListRequest,
): Promise<boolean> | Status {
  const page = resolvePage(store, snapshots, request);
  if ("kind" in page) return page;
  const { type, filter, limit, options } = request;
  const prefix = filter.namespace === null ? "" : `${filter.namespace}/`;
  const { entries, rv } = page;
  const first = lowerBound(entries, prefix + page.start);
  const end = prefix ? lowerBound(entries, `${prefix.slice(0, -1)}0`) : entries.length; // "0" follows "/"
  const items: Entry[] = [];
  let next = first;
  for (; next < end && (limit === 0 || items.length < limit); next++) {
    const entry = entries[next]!;
    if (matches(filter, entry)) items.push(entry);
  }
  let token: string | undefined;
  let remainingItemCount: number | undefined;
  if (next < end) {
    token = encodeContinue({ rv, start: `${items.at(-1)!.key.slice(prefix.length)}\u0000` });
    if (!options.labelSelector && !options.fieldSelector) remainingItemCount = end - next;
    snapshots.keep(type, rv, entries);
  }
  const [head, tail] = listFrame(type, String(rv), token, remainingItemCount);
  function* body(): Generator<string> {
    yield head;
    for (let i = 0; i < items.length; i++) yield i === 0 ? itemJson(items[i]!) : `,${itemJson(items[i]!)}`;
    yield tail;
  }
  return streamBody(res, kubeHeaders(), body(), request.gzip);
}
