/** The metadata the simulator's objects share: a fresh uid, labels, and the controller's owner reference. */

export interface Owner {
  kind: string;
  name: string;
  uid: string;
}

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
