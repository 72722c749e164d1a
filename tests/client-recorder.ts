/**
 * What the client tests share: handlers that record every callback, and the comparison
 * of a subscription's cache with the store's current state.
 */
import type { Envelope, InformerHandlers, ResetInfo, Subscription, SyncedInfo } from "../client/index.ts";
import { ALL } from "../protocol/streams.ts";
import type { TestHost } from "../testing/index.ts";

export interface Recorder {
  /** The callbacks to give a subscription (`...r.handlers`): it takes no other keys. */
  handlers: Required<InformerHandlers>;
  /** `ADDED web-1`, `UPDATED web-1`, `DELETED web-1`, in order. */
  calls: string[];
  resets: ResetInfo[];
  synced: SyncedInfo[];
  errors: Error[];
  /** The view a consumer builds from callbacks alone: uid → version. */
  view: Map<string, number>;
}

export function recorder(): Recorder {
  const r: Recorder = {
    calls: [],
    resets: [],
    synced: [],
    errors: [],
    view: new Map(),
    handlers: {
      onAdd(object: Envelope) {
        if (r.view.has(object.uid)) throw new Error(`onAdd for ${object.name}, which the view holds`);
        r.calls.push(`ADDED ${object.name}`);
        r.view.set(object.uid, object.version);
      },
      onUpdate(old: Envelope, current: Envelope) {
        if (!r.view.has(old.uid)) throw new Error(`onUpdate for ${old.name}, which the view does not hold`);
        r.calls.push(`UPDATED ${current.name}`);
        r.view.set(current.uid, current.version);
      },
      onDelete(object: Envelope) {
        if (!r.view.delete(object.uid)) throw new Error(`onDelete for ${object.name}, which the view does not hold`);
        r.calls.push(`DELETED ${object.name}`);
      },
      onSynced: (info) => void r.synced.push(info),
      onReset: (info) => void r.resets.push(info),
      onError: (error) => void r.errors.push(error),
    },
  };
  return r;
}

/** The store's current objects of a stream, uid → version. */
export async function storeState(th: TestHost, stream: string): Promise<Map<string, number>> {
  const { objects } = await th.host.log.snapshot(stream === ALL ? {} : { stream });
  return new Map(objects.map((o) => [o.uid, o.version]));
}

/** A subscription's cache of a stream, uid → version. */
export function cacheState(subscription: Subscription, stream: string): Map<string, number> {
  return new Map([...subscription.objects(stream)].map(([uid, e]) => [uid, e.version]));
}

/**
 * True once the cache equals the store for every stream given, and the view built from
 * callbacks alone holds the same objects (its versions may be older: an object that is
 * the same in a new epoch gets no callback).
 */
export async function matchesStore(
  th: TestHost,
  subscription: Subscription,
  streams: string[],
  view?: Map<string, number>,
): Promise<boolean> {
  const uids = new Set<string>();
  for (const stream of streams) {
    const truth = await storeState(th, stream);
    if (!sameEntries(cacheState(subscription, stream), truth)) return false;
    for (const uid of truth.keys()) uids.add(uid);
  }
  return !view || (view.size === uids.size && [...uids].every((uid) => view.has(uid)));
}

function sameEntries(a: Map<string, number>, b: Map<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of b) if (a.get(key) !== value) return false;
  return true;
}
