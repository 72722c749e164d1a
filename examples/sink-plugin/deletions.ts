/**
 * A custom kubemeta sink: an audit trail of what left the cluster. It appends one line
 * per deleted object to a file, e.g.
 *
 *     2026-11-28T04:05:06.789Z DELETED Pod payments/web-7d9f8c6b5-x2x9q uid=4f9c…
 *
 * Load it by path (relative to the config file) and configure it like a built-in:
 *
 *     sinks:
 *       - type: ./plugins/deletions.ts
 *         file: /var/log/kubemeta/deletions.log
 *         kinds: [Pod, Deployment]
 *
 * It imports one module, `kubemeta/sdk`, which resolves to the kubemeta that loads it:
 * inside the repository, from a folder where kubemeta is installed, or in the container
 * image (README, "Write a sink plugin"). `consume` runs the delivery loop: cursor,
 * retries, lag; `v` is kubemeta's own valibot, for the config schema; `appendLines` appends
 * whole lines or none to a file its user alone reads.
 */
import {
  appendLines,
  batchSchema,
  consume,
  defineSink,
  kindName,
  retrySchema,
  stallAfterSchema,
  v,
} from "kubemeta/sdk";

export default defineSink({
  type: "deletions",
  description: "Appends one line per deleted object to a file.",
  schema: v.strictObject({
    file: v.pipe(v.string(), v.minLength(1), v.description("The audit file, appended to.")),
    // `kindName`: `kinds: [pods]` (a resource's name, no kind) is a config error rather than an audit left empty.
    kinds: v.optional(v.pipe(v.array(kindName), v.description("Kinds to record; empty records every kind.")), []),
    // The standard keys of every sink built on `consume`, with kubemeta's defaults: `batch: { size, linger }`,
    // `retry: { initial, max }`, and `stallAfter`, how long a batch may be held before kubemeta_sink_stalled says so.
    batch: batchSchema(),
    retry: retrySchema(),
    stallAfter: stallAfterSchema(),
  }),
  example: { file: "deletions.log", kinds: ["Pod"] },
  create(config, ctx) {
    const kinds = new Set(config.kinds);
    return consume(ctx, {
      // The first start records deletions from now on; later ones resume after the cursor.
      from: "head",
      filter: (e) => e.type === "DELETED" && (kinds.size === 0 || kinds.has(e.kind)),
      batch: config.batch,
      retry: config.retry,
      stallAfterMs: config.stallAfter,
      async deliver(envelopes) {
        const lines = envelopes.map(
          (e) => `${e.time} DELETED ${e.kind} ${e.namespace ? `${e.namespace}/` : ""}${e.name} uid=${e.uid}\n`,
        );
        // Whole lines or none (a full disk, a rotation), made 0600: each line names an object of the cluster.
        await appendLines(config.file, lines.join(""));
      },
    });
  },
});
