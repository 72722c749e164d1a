/**
 * The object store behind the test API server: etcd's role. One global
 * resourceVersion that grows by 1 per write, objects kept only as their serialized
 * JSON (a 150,000-pod cluster must not hold 150,000 parsed object graphs, and a LIST
 * must not re-stringify them), a bounded history of events for watches that resume
 * from a resourceVersion, and synchronous fan-out to open watches so that a snapshot
 * plus "events after it" is always consistent.
 */
import type { KubeObject } from "../sdk/model.ts";
import type { ResourceType } from "./resource-types.ts";
import type { ServedResources } from "./resources.ts";
import { selectableFields, type Labels } from "./selectors.ts";
import { kubeTime, serialize, serializeObject, type Serialized } from "./serialize.ts";
import { type Entry, keyOf, type StoredEvent, type Subscriber, Table } from "./table.ts";

/** Built-in kinds whose registry strategy maintains metadata.generation (custom resources' strategy does too). */
const GENERATION_KINDS = new Set([
  "Pod",
  "EndpointSlice",
  "Deployment",
  "ReplicaSet",
  "StatefulSet",
  "DaemonSet",
  "Job",
  "CronJob",
  "Ingress",
  "HorizontalPodAutoscaler",
]);

export class ObjectStore {
  private rv = 0;
  private readonly tables = new Map<ResourceType, Table>();
  /** Ring buffer of the last `capacity` events, all kinds together as in etcd. */
  private readonly history: StoredEvent[] = [];
  private historyHead = 0;
  /** Every event with rv > historyStart is in `history`. */
  private historyStart = 0;
  /** The resourceVersion at which each custom resource installed at run time began to be served (serveFrom). */
  private readonly servedFrom = new Map<ResourceType, number>();

  constructor(
    private readonly capacity: number,
    private readonly resources: ServedResources,
  ) {}

  resourceVersion(): number {
    return this.rv;
  }

  private table(type: ResourceType): Table {
    let table = this.tables.get(type);
    if (!table) {
      table = new Table();
      this.tables.set(type, table);
    }
    return table;
  }

  private locate(object: KubeObject): { type: ResourceType; namespace: string | null; name: string } {
    const type = this.resources.ofKind(object.kind ?? "", object.apiVersion);
    const name = object.metadata?.name;
    if (!name) throw new Error(`${type.kind} without metadata.name`);
    const namespace = type.namespaced ? (object.metadata?.namespace ?? "default") : null;
    return { type, namespace, name };
  }

  private entryOf(
    type: ResourceType,
    namespace: string | null,
    name: string,
    rv: number,
    serialized: Serialized,
  ): Entry {
    const { object, json, specDigest } = serialized;
    const metadata = object.metadata!;
    return {
      type,
      key: keyOf(namespace, name),
      namespace,
      name,
      uid: metadata.uid!,
      creationTimestamp: metadata.creationTimestamp as string,
      generation: metadata.generation as number | undefined,
      rv,
      json,
      labels: { ...(metadata.labels as Labels | undefined) },
      fields: selectableFields(object, type),
      specDigest,
    };
  }

  create(input: KubeObject): KubeObject {
    const { type, namespace, name } = this.locate(input);
    const table = this.table(type);
    const key = keyOf(namespace, name);
    if (table.entries.has(key)) throw new Error(`${type.resource} "${name}" already exists`);
    const rv = this.rv + 1;
    const given = input.metadata ?? {};
    const hasGeneration = type.custom === true || GENERATION_KINDS.has(type.kind);
    const serialized = serialize(
      type,
      input,
      {
        ...given,
        namespace: namespace ?? undefined,
        uid: given.uid ?? crypto.randomUUID(),
        resourceVersion: String(rv),
        creationTimestamp: given.creationTimestamp ?? kubeTime(),
      },
      () => (hasGeneration ? ((given.generation as number | undefined) ?? 1) : undefined),
    );
    const entry = this.entryOf(type, namespace, name, rv, serialized);
    this.rv = rv;
    table.add(key, entry);
    this.record({ rv, type: "ADDED", entry });
    return serialized.object;
  }

  update(input: KubeObject): KubeObject {
    const { type, namespace, name } = this.locate(input);
    const table = this.table(type);
    const key = keyOf(namespace, name);
    const previous = table.entries.get(key);
    if (!previous) throw new Error(`${type.resource} "${name}" not found`);
    const rv = this.rv + 1;
    const serialized = serialize(
      type,
      input,
      {
        ...input.metadata,
        namespace: namespace ?? undefined,
        uid: previous.uid,
        resourceVersion: String(rv),
        creationTimestamp: previous.creationTimestamp,
      },
      (digest) =>
        previous.generation === undefined ? undefined : previous.generation + (digest === previous.specDigest ? 0 : 1),
    );
    const entry = this.entryOf(type, namespace, name, rv, serialized);
    this.rv = rv;
    table.entries.set(key, entry);
    this.record({ rv, type: "MODIFIED", entry, previous });
    return serialized.object;
  }

  delete(type: ResourceType, namespace: string | null, name: string): KubeObject | undefined {
    const table = this.table(type);
    const key = keyOf(type.namespaced ? namespace : null, name);
    const current = table.entries.get(key);
    if (!current) return undefined;
    const rv = this.rv + 1;
    // The DELETED event carries the last state stamped with the deletion's revision.
    const object = JSON.parse(current.json) as KubeObject;
    object.metadata!.resourceVersion = String(rv);
    const entry: Entry = { ...current, rv, json: serializeObject(type, object) };
    this.rv = rv;
    table.remove(key);
    this.record({ rv, type: "DELETED", entry });
    return object;
  }

  /** Deletes every object of `type`, a DELETED each, then forgets the type: what deleting its CRD does. */
  drop(type: ResourceType): void {
    for (const { namespace, name } of this.snapshot(type).entries) this.delete(type, namespace, name);
    this.tables.delete(type);
  }

  entry(type: ResourceType, namespace: string | null, name: string): Entry | undefined {
    return this.table(type).entries.get(keyOf(type.namespaced ? namespace : null, name));
  }

  /** The current objects of a type in key order, consistent with `rv`. */
  snapshot(type: ResourceType): { rv: number; entries: Entry[] } {
    const table = this.table(type);
    return { rv: this.rv, entries: table.sortedKeys().map((key) => table.entries.get(key)!) };
  }

  subscribe(type: ResourceType, subscriber: Subscriber): () => void {
    const subscribers = this.table(type).subscribers;
    subscribers.add(subscriber);
    return () => subscribers.delete(subscriber);
  }

  /** Events of `type` after `rv`, "too-old" when history no longer covers it, "too-large" when it is in the future. */
  eventsAfter(type: ResourceType, rv: number): StoredEvent[] | "too-old" | "too-large" {
    if (rv > this.rv) return "too-large";
    if (rv < this.oldestServed(type)) return "too-old";
    const events: StoredEvent[] = [];
    const size = this.history.length;
    for (let i = 0; i < size; i++) {
      const event = this.history[(this.historyHead + i) % size]!;
      if (event.rv > rv && event.entry.type === type) events.push(event);
    }
    return events;
  }

  /** The resourceVersion a 410 names as the oldest one still served (of `type`, when given). */
  oldestServed(type?: ResourceType): number {
    return Math.max(this.historyStart, (type && this.servedFrom.get(type)) ?? 0);
  }

  /**
   * A custom resource is served from now on. kube-apiserver's watch cache of a new CRD starts with a list at the
   * current resourceVersion: a watch from an older one gets 410, even where etcd's history still holds it (a CRD of
   * that name deleted a moment ago, whose objects' DELETED are no watch of the new one's to send).
   */
  serveFrom(type: ResourceType): void {
    this.servedFrom.set(type, this.rv);
  }

  /** Forgets the history, like an etcd compaction: watches from any older resourceVersion get 410. */
  compact(): void {
    this.history.length = 0;
    this.historyHead = 0;
    this.historyStart = this.rv;
  }

  private record(event: StoredEvent): void {
    if (this.capacity > 0) {
      if (this.history.length < this.capacity) this.history.push(event);
      else {
        this.historyStart = this.history[this.historyHead]!.rv;
        this.history[this.historyHead] = event;
        this.historyHead = (this.historyHead + 1) % this.capacity;
      }
    } else this.historyStart = event.rv;
    for (const subscriber of this.table(event.entry.type).subscribers) subscriber.offer(event);
  }
}
