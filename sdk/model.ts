/**
 * The data model inside kubemeta: a change as it comes in, an update as the store keeps
 * it, and the envelope a consumer gets from it (protocol/envelope.ts).
 */
import type { ChangeType, Envelope, SlimObject } from "../protocol/envelope.ts";
import { ALL } from "../protocol/streams.ts";

/** Raw Kubernetes object as parsed from the API server. Never kept after slimming. */
export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/**
 * A committed update, as the store keeps it. `streamPrev` is the previous version of
 * `stream` (0 when it is the first); the `all` stream's prev is derived (version - 1,
 * the log being gap-free).
 */
export interface Update extends Omit<Envelope, "epoch" | "prev" | "stream"> {
  /** `shared`, `node/<name>`, or null for an update that is in `all` only (unscheduled pod). */
  stream: string | null;
  streamPrev: number;
}

/** The current state of one object, as the store keeps it (for snapshots and diffs). */
export interface CurrentObject {
  kind: string;
  uid: string;
  namespace: string | null;
  name: string;
  node: string | null;
  stream: string | null;
  /** Version of the update that produced this state. */
  version: number;
  resourceVersion: string;
  object: SlimObject;
}

/** True when an update belongs to the given stream. */
export function inStream(update: Pick<Update, "stream">, stream: string): boolean {
  return stream === ALL || update.stream === stream;
}

/**
 * The object JSON text as the store keeps it (JSON.stringify of the object, the store's only writer), on what the
 * store reads back. Replays embed it in envelopes as it is: parsing ~1 KB per update only to stringify it again was
 * most of a replay's work, and the bytes are the same (JSON.stringify(JSON.parse(text)) is `text` for any text that
 * JSON.stringify wrote). A symbol, not enumerable: invisible to spreads, JSON.stringify and deep equality.
 */
const OBJECT_JSON = Symbol("object JSON");

interface HasObjectJson {
  [OBJECT_JSON]?: string;
}

/**
 * Gives an update or a current object without its `object` (what the store read, what the core prepared) an
 * `object` parsed from its JSON text on first use, unless `parsed` is that object already: a consumer that reads it
 * sees a plain object, one that only serializes the envelope (or stores the update) never parses it. Assigning
 * `object` replaces it, text included.
 */
export function withObjectJson<T extends object>(
  fields: T,
  objectJson: string,
  parsed?: SlimObject,
): T & { object: SlimObject } {
  let json: string | undefined = objectJson;
  let object: SlimObject | undefined = parsed;
  Object.defineProperty(fields, "object", {
    enumerable: true,
    configurable: true,
    get: () => (object ??= JSON.parse(objectJson) as SlimObject),
    set(value: SlimObject) {
      object = value;
      json = undefined;
    },
  });
  Object.defineProperty(fields, OBJECT_JSON, { get: () => json });
  return fields as T & { object: SlimObject };
}

/** The object's JSON text given by withObjectJson, while `object` was not replaced; else JSON.stringify of it. */
export function objectJsonOf(holder: { object: SlimObject }): string {
  return (holder as HasObjectJson)[OBJECT_JSON] ?? JSON.stringify(holder.object);
}

/**
 * `JSON.stringify({ ...fields, [key]: value, ...after })`, byte for byte, where `rawJson` is JSON.stringify's text of
 * `value`: embedded as it is, never parsed to be written again. `fields` and `after` must not hold `key`. Each part
 * is JSON.stringify's own output, so every field is written exactly as it would be in the whole.
 */
export function stringifyWithRaw(fields: object, key: string, rawJson: string, after?: object): string {
  const head = JSON.stringify(fields);
  const upToRaw = `${head === "{}" ? "{" : `${head.slice(0, -1)},`}${JSON.stringify(key)}:${rawJson}`;
  const tail = after === undefined ? "{}" : JSON.stringify(after);
  return tail === "{}" ? `${upToRaw}}` : `${upToRaw},${tail.slice(1)}`;
}

/** An update's envelope on `stream` without its object: what toEnvelope and envelopeJson share. */
function envelopeFields(epoch: string, update: Update, stream: string): Omit<Envelope, "object"> {
  const { version, type, kind, uid, namespace, name, node, resourceVersion, time } = update;
  const prev = stream === ALL ? version - 1 : update.streamPrev;
  return { epoch, version, prev, stream, type, kind, uid, namespace, name, node, resourceVersion, time };
}

/** A current object's snapshot envelope without its object: what snapshotEnvelope and snapshotEnvelopeJson share. */
function snapshotFields(epoch: string, stream: string, current: CurrentObject, time: string): Omit<Envelope, "object"> {
  const { kind, uid, namespace, name, node, version, resourceVersion } = current;
  const type: ChangeType = "ADDED";
  return { epoch, version, prev: 0, stream, type, kind, uid, namespace, name, node, resourceVersion, time };
}

/**
 * `JSON.stringify(toEnvelope(epoch, update, stream))`, byte for byte: an update that carries its object's JSON text
 * (see OBJECT_JSON) embeds it as it is; any other object is stringified.
 */
export function envelopeJson(epoch: string, update: Update, stream: string): string {
  // `object` last, where the Envelope type (and so toEnvelope) has it.
  return stringifyWithRaw(envelopeFields(epoch, update, stream), "object", objectJsonOf(update));
}

/** `JSON.stringify(snapshotEnvelope(epoch, stream, current, time))`, byte for byte (see envelopeJson). */
export function snapshotEnvelopeJson(epoch: string, stream: string, current: CurrentObject, time: string): string {
  return stringifyWithRaw(snapshotFields(epoch, stream, current, time), "object", objectJsonOf(current));
}

/**
 * The envelope of an update as seen on `stream` (which must contain it). An update that carries its object's JSON
 * text (withObjectJson) gives an envelope that carries it too: jsonText() embeds it, `object` parses it on use.
 */
export function toEnvelope(epoch: string, update: Update, stream: string): Envelope {
  const fields = envelopeFields(epoch, update, stream);
  const objectJson = (update as HasObjectJson)[OBJECT_JSON];
  if (objectJson === undefined) return { ...fields, object: update.object };
  return withObjectJson(fields, objectJson);
}

/**
 * `JSON.stringify(value)`, byte for byte, for an envelope, update or current object: where it carries its object's JSON
 * text (withObjectJson, which puts `object` last), that text is embedded as it is instead of parsed and re-serialized.
 */
export function jsonText(value: object): string {
  const objectJson = (value as HasObjectJson)[OBJECT_JSON];
  if (objectJson === undefined) return JSON.stringify(value);
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(value)) if (key !== "object") fields[key] = (value as Record<string, unknown>)[key];
  return stringifyWithRaw(fields, "object", objectJson);
}

/**
 * A current object as a snapshot (an SSE RESET, a NATS reset) delivers it: an `ADDED`
 * envelope whose `version` is that of the update that produced its state and whose `prev`
 * is 0, since the objects of a snapshot form no chain (a consumer checks `prev` from the
 * snapshot's position on); `time` is when the snapshot was taken.
 */
export function snapshotEnvelope(epoch: string, stream: string, current: CurrentObject, time: string): Envelope {
  return { ...snapshotFields(epoch, stream, current, time), object: current.object };
}
