/**
 * The store's queries: the log (by stream, above its horizon), the current objects (by
 * stream, kind, namespace, node or uid), the digests the core diffs against, and what a
 * start loads. Each names its tables and fields; libsql/pages.ts reads them in pages.
 */
import type { Client, InValue } from "@libsql/client";
import type { ObjectDigest, ObjectQuery, StoreState, UpdateQuery } from "../../../sdk/contract.ts";
import { ALL } from "../../../protocol/streams.ts";
import { type CurrentObject, type Update, withObjectJson } from "../../../sdk/model.ts";
import { readAll, readOnePage, readPages, type PageOptions, type Selection } from "./pages.ts";

/** The id of the stream named by a parameter (NULL, matching nothing, when it has none). */
const STREAM_ID = "(SELECT id FROM streams WHERE name = ?)";
/** Versions at or below it are pruned or kept only as the current state of an object. */
const PRUNED_THROUGH = "(SELECT pruned_through FROM meta WHERE id = 1)";
/** The same for one stream (named by a parameter): below it, retention deleted updates of that stream. */
const STREAM_PRUNED_THROUGH = `coalesce(
  (SELECT pruned_through FROM stream_horizons WHERE stream_id = ${STREAM_ID}), 0)`;

const UPDATES = "updates AS t LEFT JOIN streams AS s ON s.id = t.stream_id";
const UPDATE_FIELDS = `json_array(t.version, s.name, t.stream_prev, t.type, t.kind, t.uid, t.namespace, t.name,
  t.node, t.resource_version, t.time)`;
/** The store wrote each field from the type the model gives it. */
function decodeUpdate(row: unknown[], objectJson: string): Update {
  const [version, stream, streamPrev, type, kind, uid, namespace, name, node, resourceVersion, time] = row;
  const fields = { version, stream, streamPrev, type, kind, uid, namespace, name, node, resourceVersion, time };
  return withObjectJson(fields as Omit<Update, "object">, objectJson);
}

/** An object's state is its latest update; CROSS JOIN keeps objects the outer loop, in rowid order. */
const OBJECTS =
  "objects AS t CROSS JOIN updates AS u ON u.version = t.version LEFT JOIN streams AS s ON s.id = t.stream_id";
const OBJECT_FIELDS = "json_array(t.kind, t.uid, u.namespace, u.name, t.node, s.name, t.version, u.resource_version)";
function decodeObject(row: unknown[], objectJson: string): CurrentObject {
  const [kind, uid, namespace, name, node, stream, version, resourceVersion] = row;
  const fields = { kind, uid, namespace, name, node, stream, version, resourceVersion };
  return withObjectJson(fields as Omit<CurrentObject, "object">, objectJson);
}

const DIGESTS = "objects AS t LEFT JOIN streams AS s ON s.id = t.stream_id";
const DIGEST_FIELDS = "json_array(t.kind, t.uid, t.digest, s.name)";
function decodeDigest(row: unknown[]): ObjectDigest {
  const [kind, uid, digest, stream] = row;
  return { kind, uid, digest, stream } as ObjectDigest;
}

export async function readUpdates(reader: Client, query: UpdateQuery): Promise<Update[]> {
  if (query.limit <= 0) return [];
  const where = ["t.rowid <= ?"];
  const args: InValue[] = [query.to ?? Number.MAX_SAFE_INTEGER];
  const single = query.stream !== ALL;
  if (single) {
    where.push(`t.stream_id = ${STREAM_ID}`);
    args.push(query.stream);
  }
  const selection = {
    from: UPDATES,
    fields: UPDATE_FIELDS,
    object: "t.object",
    decode: decodeUpdate,
    where,
    args,
    floor: single ? STREAM_PRUNED_THROUGH : PRUNED_THROUGH,
    floorArgs: single ? [query.stream] : [],
  };
  const { items } = await readOnePage<Update>(reader, selection, query.after, query.limit);
  const ordered = items.every((update, i) => i === 0 || items[i - 1]!.version < update.version);
  return ordered ? items : items.sort((a, b) => a.version - b.version);
}

function objectSelection(query: ObjectQuery): Selection<CurrentObject> {
  const where: string[] = [];
  const args: InValue[] = [];
  const equal = (condition: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(condition);
    args.push(value);
  };
  if (query.stream !== ALL) equal(`t.stream_id = ${STREAM_ID}`, query.stream);
  equal("t.kind = ?", query.kind);
  equal("t.namespace = ?", query.namespace);
  equal("t.node = ?", query.node);
  if (query.uids) {
    where.push("t.uid IN (SELECT value FROM json_each(?))");
    args.push(JSON.stringify(query.uids));
  }
  return { from: OBJECTS, fields: OBJECT_FIELDS, object: "u.object", decode: decodeObject, where, args };
}

export async function snapshot(
  reader: Client,
  query: ObjectQuery,
): Promise<{ version: number; objects: CurrentObject[] }> {
  const { head, items } = await readAll<CurrentObject>(reader, objectSelection(query));
  return { version: head, objects: items };
}

export async function* snapshotPages(
  reader: Client,
  query: ObjectQuery,
  pageSize: number,
  options?: PageOptions,
): AsyncGenerator<{ version: number; objects: CurrentObject[] }> {
  for await (const { head, items } of readPages<CurrentObject>(reader, objectSelection(query), pageSize, options))
    yield { version: head, objects: items };
}

export async function digests(reader: Client): Promise<ObjectDigest[]> {
  return (await readAll(reader, { from: DIGESTS, fields: DIGEST_FIELDS, decode: decodeDigest, where: [], args: [] }))
    .items;
}

/** What the store holds, read in one transaction. */
export async function loadState(reader: Client): Promise<StoreState> {
  const [meta, streams, resumePoints] = await reader.batch(
    [
      "SELECT epoch, head, pruned_through, whole FROM meta WHERE id = 1",
      "SELECT name, head FROM streams",
      "SELECT resource, resource_version FROM resume_points",
    ],
    "read",
  );
  const row = meta!.rows[0];
  if (!row) throw new Error("the store has no meta row (not initialised)");
  return {
    epoch: String(row.epoch),
    head: Number(row.head),
    oldest: Number(row.pruned_through) + 1,
    streamHeads: new Map(streams!.rows.map((r) => [String(r.name), Number(r.head)])),
    resumePoints: new Map(resumePoints!.rows.map((r) => [String(r.resource), String(r.resource_version)])),
    whole: Number(row.whole) === 1,
  };
}

/** Each stream's horizon: the last of its updates retention deleted (streams it deleted none of are absent). */
export async function loadHorizons(reader: Client): Promise<Map<string, number>> {
  const sql = "SELECT s.name, h.pruned_through FROM stream_horizons AS h JOIN streams AS s ON s.id = h.stream_id";
  return new Map((await reader.execute(sql)).rows.map((r) => [String(r.name), Number(r.pruned_through)]));
}

/** One stream's horizon, 0 when retention deleted none of its updates. */
export async function streamHorizon(reader: Client, stream: string): Promise<number> {
  const sql = `SELECT pruned_through FROM stream_horizons WHERE stream_id = ${STREAM_ID}`;
  return Number((await reader.execute({ sql, args: [stream] })).rows[0]?.pruned_through ?? 0);
}

/** The id of every stream, for the writer that hands out new ones. */
export async function loadStreamIds(reader: Client): Promise<[string, number][]> {
  return (await reader.execute("SELECT name, id FROM streams")).rows.map((r) => [String(r.name), Number(r.id)]);
}
