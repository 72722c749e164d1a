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
 * It imports two files of the kubemeta it runs in: the contract (core/contract.ts) and
 * `consume` (core/consume.ts), which runs the delivery loop: cursor, retries, lag. The
 * paths below hold inside the repository; a plugin kept elsewhere imports the same files
 * by absolute path from the kubemeta checkout or image (`/app/core/consume.ts` in the
 * container). Its one package is valibot, for the config schema.
 */
import * as v from "valibot";
import { appendFile } from "node:fs/promises";
import { defineSink } from "../../sdk/contract.ts";
import { consume } from "../../sdk/consume.ts";

export default defineSink({
  type: "deletions",
  description: "Appends one line per deleted object to a file.",
  schema: v.strictObject({
    /** The audit file, appended to. */
    file: v.pipe(v.string(), v.minLength(1)),
    /** Kinds to record; empty records every kind. */
    kinds: v.optional(v.array(v.string()), []),
  }),
  example: { file: "deletions.log", kinds: ["Pod"] },
  create(config, ctx) {
    const kinds = new Set(config.kinds);
    return consume(ctx, {
      // The first start records deletions from now on; later ones resume after the cursor.
      from: "head",
      filter: (u) => u.type === "DELETED" && (kinds.size === 0 || kinds.has(u.kind)),
      async deliver(updates) {
        const lines = updates.map((u) => `${u.time} DELETED ${u.kind} ${u.namespace ? `${u.namespace}/` : ""}${u.name} uid=${u.uid}\n`);
        await appendFile(config.file, lines.join(""));
      },
    });
  },
});
