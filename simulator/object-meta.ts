/** What the simulator's objects share of their metadata (workloads.ts, networking.ts). */

/** An owner as an ownerReference names it. */
export interface Owner {
  kind: string;
  name: string;
  uid: string;
}

/** A fresh uid, the labels and, when owned, the controller's reference, whose `apiVersion` is the owner's. */
export function metadata(
  name: string,
  namespace: string | undefined,
  labels: Record<string, string>,
  owner?: Owner,
  apiVersion = "apps/v1",
) {
  return {
    name,
    ...(namespace ? { namespace } : {}),
    uid: crypto.randomUUID(),
    labels,
    ...(owner
      ? {
          ownerReferences: [
            {
              apiVersion,
              kind: owner.kind,
              name: owner.name,
              uid: owner.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        }
      : {}),
  };
}
