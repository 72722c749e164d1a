/**
 * The SSE wire format of /v1/watch (DESIGN.md, "HTTP"). Event ids are chosen so that a
 * standard EventSource, which reconnects with the id of the last event it received as
 * `Last-Event-ID`, always resumes correctly:
 *
 * - live and replayed updates: `<epoch>:<version>`;
 * - RESET: an empty `id:`, which clears the client's last event id;
 * - snapshot ADDED events: no id, so the cleared id stays; a client cut off mid-snapshot
 *   reconnects without a resume point and gets a whole new RESET and snapshot (giving them
 *   the snapshot version would make it resume after that version and skip the objects
 *   not yet sent);
 * - SYNCED: `<epoch>:<version the state is consistent with>`;
 * - OVERFLOW (the last event to a subscriber too slow to keep up): `<epoch>:<version>` of
 *   the last update it was sent, where its reconnect picks up;
 * - an id alone (`progressLine`, no event: an EventSource only takes the id): on a filtered
 *   stream, the version its live reading has passed, the updates since its last event's id
 *   being of other kinds or namespaces. Without it, a filtered stream's id would stay at its
 *   last matching update, which retention passes while others flow, and a reconnect (a
 *   kubemeta restart) from there would be a reset although the client missed nothing.
 */
import { formatPosition } from "../../../protocol/position.ts";
import { envelopeJson, snapshotEnvelopeJson, type CurrentObject, type Update } from "../../../sdk/model.ts";

export interface Filter {
  kinds?: Set<string>;
  namespace?: string;
}

export function isFiltered(filter: Filter): boolean {
  return filter.kinds !== undefined || filter.namespace !== undefined;
}

export function matches(filter: Filter, item: Pick<Update, "kind" | "namespace">): boolean {
  return (
    (!filter.kinds || filter.kinds.has(item.kind)) &&
    (filter.namespace === undefined || item.namespace === filter.namespace)
  );
}

/** An event whose data is `json` (one line: JSON.stringify escapes every newline). */
function eventOf(type: string, json: string, id: string | undefined): string {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return `${idLine}event: ${type}\ndata: ${json}\n\n`;
}

function event(type: string, data: unknown, id: string | undefined): string {
  return eventOf(type, JSON.stringify(data), id);
}

const encoder = new TextEncoder();

/**
 * Formats updates as events, once per update and stream: every subscriber of a stream
 * reads the same Update objects from the log's tail, so the JSON is shared, not redone
 * per subscriber. Live subscribers without filters also share the bytes of the latest
 * batch (they all wake on the same commit and read the same range). Entries go when the
 * log drops the updates.
 */
export class UpdateEvents {
  private readonly byStream = new Map<string, WeakMap<Update, string>>();
  private readonly latestBatch = new Map<string, { key: string; bytes: Uint8Array }>();

  constructor(private readonly epoch: string) {}

  /** The matching updates of a batch, as the bytes of their events. */
  encode(stream: string, updates: Update[], filter: Filter): Uint8Array {
    if (isFiltered(filter)) return encoder.encode(this.format(stream, updates, filter));
    const key = `${updates[0]?.version}-${updates.at(-1)?.version}-${updates.length}`;
    const latest = this.latestBatch.get(stream);
    if (latest?.key === key) return latest.bytes;
    const bytes = encoder.encode(this.format(stream, updates, filter));
    this.latestBatch.set(stream, { key, bytes });
    return bytes;
  }

  private format(stream: string, updates: Update[], filter: Filter): string {
    let cache = this.byStream.get(stream);
    if (!cache) {
      cache = new WeakMap();
      this.byStream.set(stream, cache);
    }
    let text = "";
    for (const update of updates) {
      if (!matches(filter, update)) continue;
      let formatted = cache.get(update);
      if (formatted === undefined) {
        formatted = eventOf(
          update.type,
          envelopeJson(this.epoch, update, stream),
          formatPosition(this.epoch, update.version),
        );
        cache.set(update, formatted);
      }
      text += formatted;
    }
    return text;
  }

  /** Forgets a stream nobody follows any more. */
  forget(stream: string): void {
    this.byStream.delete(stream);
    this.latestBatch.delete(stream);
  }
}

/** Snapshot objects as ADDED events (sdk/model.ts snapshotEnvelope), without ids. */
export function snapshotEvents(epoch: string, stream: string, objects: CurrentObject[], time: string): string {
  let text = "";
  for (const object of objects) text += eventOf("ADDED", snapshotEnvelopeJson(epoch, stream, object, time), undefined);
  return text;
}

export function resetEvent(epoch: string, stream: string, { code, reason }: { code: string; reason: string }): string {
  return `id:\n${event("RESET", { epoch, stream, reason, code }, undefined)}`;
}

export function syncedEvent(epoch: string, stream: string, version: number): string {
  return event("SYNCED", { epoch, stream, version }, formatPosition(epoch, version));
}

export function overflowEvent(epoch: string, stream: string, version: number): string {
  const resume = formatPosition(epoch, version);
  return event(
    "OVERFLOW",
    { epoch, stream, version, resume, reason: "subscriber too slow; reconnect with Last-Event-ID to resume" },
    resume,
  );
}

export function progressLine(epoch: string, version: number): string {
  return `id: ${formatPosition(epoch, version)}\n\n`;
}

/** Sent first: Bun.serve sends no response headers before the first body byte. */
export const OPENING = ": kubemeta\n\n";
export const HEARTBEAT = ": heartbeat\n\n";
