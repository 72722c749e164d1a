/**
 * What replicas of one Lease must agree on, said when they do not. Each replica's config is its own, and a difference
 * in these goes unseen otherwise: the leader writes its values on the Lease it holds (annotations, beside the fields
 * client-go's election reads), and every replica compares them with its own at each read of the Lease (a standby, each
 * retryPeriod). A difference is one error line per change of the leader's value, and a gauge; nothing else changes:
 * a rolling update that renames the cluster must still complete, a round of differing configs per handover.
 */
import type { LeaseAnnotations } from "../kube/election.ts";
import type { Lease, LeaseSpec } from "../kube/lease.ts";
import type { Logger, Metrics } from "../sdk/telemetry.ts";

interface Agreed {
  /** The config key that differs, as the gauge's label and the log name it. */
  key: string;
  annotation: string;
  own: string;
  /** What goes wrong while the leader's value is not this replica's. */
  consequence: string;
}

export const CLUSTER_ANNOTATION = "kubemeta.io/cluster";
/** The store's epoch, not its URL: replicas may reach one store by different addresses, never two by one epoch. */
export const STORE_EPOCH_ANNOTATION = "kubemeta.io/store-epoch";
/**
 * Who wrote the values: a leader of a release before this check keeps its predecessor's annotations on the Lease it
 * takes over (a replace keeps the metadata read), which are not its own.
 */
export const WRITER_ANNOTATION = "kubemeta.io/annotated-by";
/**
 * The renewTime of the spec they were written with: a leader of a release before this check under the name that wrote
 * them (a StatefulSet's pod rolled back, a replica killed and restarted of an earlier release, which renews the Lease
 * as still its own) keeps them, and its own renewals make them stale.
 */
export const WRITTEN_AT_ANNOTATION = "kubemeta.io/annotated-at";

export interface AgreementOptions {
  identity: string;
  cluster: string;
  /** The epoch of the store this replica opened. */
  epoch: string;
  logger: Logger;
  metrics: Metrics;
}

export function haAgreement(options: AgreementOptions): LeaseAnnotations {
  const { identity, logger } = options;
  const mismatch = options.metrics.gauge(
    "kubemeta_ha_config_mismatch",
    "1 while the leader's value of a config key that every replica must share differs from this replica's, by key: " +
      "cluster.name, store.url (the store's epoch).",
  );
  const agreed: Agreed[] = [
    {
      key: "cluster.name",
      annotation: CLUSTER_ANNOTATION,
      own: options.cluster,
      consequence:
        "the NATS subjects and webhook bodies change with each handover between them: consumers of the other name " +
        "get nothing from the new leader, and their replays no responders",
    },
    {
      key: "store.url",
      annotation: STORE_EPOCH_ANNOTATION,
      own: options.epoch,
      consequence:
        "this replica follows a store its leader does not write (two stores under one Lease): its readers get no new " +
        "update, and what it would write as the leader the others would not read",
    },
  ];
  /** The leader's value last said to differ, by key: said again only once it changes. */
  const differing = new Map<string, string>();
  for (const { key } of agreed) mismatch.set(0, { key });

  return {
    own: (spec: LeaseSpec) =>
      Object.fromEntries([
        [WRITER_ANNOTATION, identity],
        [WRITTEN_AT_ANNOTATION, spec.renewTime ?? ""],
        ...agreed.map(({ annotation, own }) => [annotation, own]),
      ]),
    seen(lease: Lease) {
      const leader = lease.spec.holderIdentity;
      // Released: what it carries is a former leader's, whose successor writes its own.
      if (!leader) return;
      const annotations = lease.metadata.annotations ?? {};
      // This replica's own, or a leader that did not write them with this spec (a release before this check, under
      // its own name or another's): nothing to compare.
      const leaderWroteThem =
        leader !== identity &&
        annotations[WRITER_ANNOTATION] === leader &&
        sameTime(annotations[WRITTEN_AT_ANNOTATION], lease.spec.renewTime);
      for (const { key, annotation, own, consequence } of agreed) {
        const theirs = leaderWroteThem ? annotations[annotation] : own;
        if (theirs === undefined || theirs === own) {
          if (differing.delete(key) && leaderWroteThem)
            logger.info(`${key} agrees with the leader's again`, { key, leader, value: own });
          mismatch.set(0, { key });
        } else if (differing.get(key) !== theirs) {
          differing.set(key, theirs);
          mismatch.set(1, { key });
          const values = { leader, leaderValue: theirs, value: own };
          logger.error(`${key} differs between this replica and the leader`, { key, ...values, consequence });
        }
      }
    },
  };
}

/** Two MicroTimes at one instant, however many fraction digits the API server writes back. */
function sameTime(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && Date.parse(a) === Date.parse(b);
}
