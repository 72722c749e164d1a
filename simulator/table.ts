/**
 * What the test API server's store holds: an object as stored (Entry), an event of the history, and one resource
 * type's objects, listed in etcd's key order.
 */
import type { ChangeType } from "../protocol/envelope.ts";
import type { ResourceType } from "./resource-types.ts";
import type { Labels } from "./selectors.ts";

export interface Entry {
  type: ResourceType;
  /** etcd key order: `<namespace>/<name>` or `<name>`. */
  key: string;
  namespace: string | null;
  name: string;
  uid: string;
  creationTimestamp: string;
  generation: number | undefined;
  rv: number;
  /** The whole object, `kind` and `apiVersion` first (what GET and watch events carry). */
  json: string;
  labels: Labels;
  fields: Labels;
  /** Digest of everything but metadata and status: a change bumps metadata.generation. */
  specDigest: number | bigint;
}

export interface StoredEvent {
  rv: number;
  type: ChangeType;
  entry: Entry;
  /** The object before a MODIFIED: filtered watches turn it into ADDED or DELETED. */
  previous?: Entry;
  /** The serialized event, made by the first watch that sends it and shared by the others. */
  line?: string;
}

export interface Subscriber {
  offer(event: StoredEvent): void;
}

export function keyOf(namespace: string | null, name: string): string {
  return namespace === null ? name : `${namespace}/${name}`;
}

export class Table {
  readonly entries = new Map<string, Entry>();
  readonly subscribers = new Set<Subscriber>();
  /** Keys in etcd (byte) order as of the last `sortedKeys()`; creates and deletes since are merged lazily. */
  private sorted: string[] = [];
  private added: string[] = [];
  private dirty = false;

  add(key: string, entry: Entry): void {
    this.entries.set(key, entry);
    this.added.push(key);
    this.dirty = true;
  }

  remove(key: string): void {
    this.entries.delete(key);
    this.dirty = true;
  }

  /** Merging beats keeping the array sorted on every write: a splice per create is O(n), O(n²) to populate. */
  sortedKeys(): string[] {
    if (!this.dirty) return this.sorted;
    const kept = this.sorted.filter((key) => this.entries.has(key));
    const added = this.added.filter((key) => this.entries.has(key)).sort();
    const merged: string[] = [];
    let i = 0;
    let j = 0;
    while (i < kept.length || j < added.length) {
      const next = j >= added.length || (i < kept.length && kept[i]! <= added[j]!) ? kept[i++]! : added[j++]!;
      if (merged.at(-1) !== next) merged.push(next); // a key deleted and created again is in both
    }
    this.sorted = merged;
    this.added = [];
    this.dirty = false;
    return merged;
  }
}
