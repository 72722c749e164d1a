/**
 * What the core keeps of every stored object: its slim copy's digest (to drop a change that changes nothing) and its
 * stream (where its DELETED goes). By kind, then uid: a relist's end and a retraction look at their kind's objects
 * only, not at every object of the cluster (198,000 at a time, once per resource, held the event loop 30 ms).
 */
export interface Known {
  digest: number;
  stream: string | null;
}

export class KnownObjects {
  private readonly byKind = new Map<string, Map<string, Known>>();

  /** Summed per kind: a few dozen kinds at most, read once a commit. */
  get size(): number {
    let size = 0;
    for (const ofKind of this.byKind.values()) size += ofKind.size;
    return size;
  }

  get(kind: string, uid: string): Known | undefined {
    return this.byKind.get(kind)?.get(uid);
  }

  set(kind: string, uid: string, known: Known): void {
    let ofKind = this.byKind.get(kind);
    if (!ofKind) {
      ofKind = new Map();
      this.byKind.set(kind, ofKind);
    }
    ofKind.set(uid, known);
  }

  /** False when the object was not known. */
  delete(kind: string, uid: string): boolean {
    return this.byKind.get(kind)?.delete(uid) ?? false;
  }

  /** The uids of the known objects of `kind`, but those `listed` holds. */
  uidsOf(kind: string, listed?: Set<string>): string[] {
    const uids: string[] = [];
    for (const uid of this.byKind.get(kind)?.keys() ?? []) if (!listed?.has(uid)) uids.push(uid);
    return uids;
  }
}
