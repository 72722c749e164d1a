/**
 * The host's part of the config schema: its own sections and the keys it reads from every plugin entry. Each plugin's
 * schema sits beside the plugin; config.ts reads a file and checks it against both. The descriptions are the config
 * reference (scripts/config-docs.ts writes the README's tables from them).
 */
import * as v from "valibot";
import { age, duration, kindName, positiveDuration } from "../sdk/schema.ts";
import { haSchema } from "./ha-config.ts";
import { httpSchema } from "./http-config.ts";
import { LOG_LEVELS } from "./logger.ts";

/** What a plugin entry's name may hold: it keys a sink's cursor and labels metrics and log lines. */
export const ENTRY_NAME = /^[a-zA-Z0-9_.-]+$/;
export const ENTRY_NAME_RULE = "letters, digits, '_', '.', '-' only";

/** Keys the host reads from every plugin entry; the rest goes to the plugin's schema. */
export const pluginEntry = v.looseObject({
  type: v.pipe(
    v.string(),
    v.minLength(1, "names a built-in type or a path to a plugin module"),
    v.description(
      "A built-in type, or the path to a plugin module: anything with a `/` or ending in `.ts`, `.js` or `.mjs`, " +
        "relative to the config file.",
    ),
  ),
  name: v.optional(
    v.pipe(
      v.string(),
      v.regex(ENTRY_NAME, ENTRY_NAME_RULE),
      v.metadata({ default: "<type>" }),
      v.description(
        "The entry's name, unique in its section (letters, digits, `_`, `.`, `-`); a sink's cursor is kept under it. " +
          "Required of a sink loaded by path whose plugin declares a built-in's type, and of an entry whose plugin " +
          "declares a type that breaks this rule (`My Sink!`).",
      ),
    ),
  ),
});

export type PluginEntry = v.InferOutput<typeof pluginEntry>;

const retentionSchema = v.strictObject({
  maxAge: v.optional(
    v.pipe(
      age,
      v.description(
        "Updates older than this are pruned (`0`: no age limit), but for the last of each current object " +
          "(its state) and the newest update (the next one's time is never before its). Counted from the newest " +
          "update's time at a leader's start, then by the time passing in the process: a clock " +
          "that jumps ahead prunes no more.",
      ),
    ),
    "24h",
  ),
  maxUpdates: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(0),
      v.description(
        "At most this many updates are kept (`0`: no count limit), besides the last of each current object " +
          "(its state).",
      ),
    ),
    1_000_000,
  ),
  interval: v.optional(
    v.pipe(
      duration,
      v.minValue(1, "must be more than 0 (retention cannot be turned off; use maxAge and maxUpdates)"),
      v.description("How often retention runs."),
    ),
    "1m",
  ),
});

/** An annotation allow-list: exact keys, or prefixes ending in "/" or "*". */
function annotationList(description: string) {
  return v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.minLength(1, 'must be an annotation key, or a prefix ending in "/" or "*"'))),
      v.description(description),
    ),
    [],
  );
}

/** What config rules may keep is checked by the core's ruleProblems in resolveConfig: one rule for both. */
const slimRuleSchema = v.strictObject({
  keep: v.optional(
    v.pipe(
      v.array(v.string()),
      v.description(
        "Dot paths (`spec.strategy.canary.steps`) whose subtrees are kept as they are, at the same paths, " +
          "besides the kind's built-in fields.",
      ),
    ),
    [],
  ),
  annotations: annotationList("Annotations this kind keeps besides `slim.annotations`, written the same way."),
  node: v.optional(
    v.pipe(
      v.string(),
      v.description(
        "Dot path of the node the object is bound to: it goes to `node/<value>` like a Pod (to `all` only while the " +
          "value is not a legal node name), and the path is kept. Not for Pod and Node.",
      ),
    ),
  ),
});

const slimSchema = v.strictObject({
  annotations: annotationList(
    "Annotations every kind keeps (a Secret none): exact keys, or prefixes ending in `/` or `*` (`*` alone: all). " +
      "An entry no key can match (`*/scrape`, `a*b`, `example.com/x-`) is a config error. " +
      "Never `kubectl.kubernetes.io/last-applied-configuration`.",
  ),
  kinds: v.optional(
    v.pipe(
      v.record(kindName, slimRuleSchema),
      v.metadata({ key: "<Kind>" }),
      v.description(
        "Rules by API kind: a built-in kind keeps its own fields plus the rule's, any other kind (custom resources) " +
          "its metadata plus the rule's; a rule watches nothing (a source's `resources` does). Secrets and " +
          "ConfigMaps are published only when named here (`Secret: {}`) and watched (`v1/secrets`), never their " +
          "data. A built-in kind in another case (`HttpRoute`, `pod`) is a config error naming its own.",
      ),
    ),
    {},
  ),
});

export const hostSchema = v.strictObject({
  cluster: v.optional(
    v.pipe(
      v.strictObject({
        name: v.optional(
          v.pipe(
            v.string(),
            v.minLength(1),
            v.description(
              "Names the cluster in the NATS subject prefix, webhook bodies and the log (its `store open` line).",
            ),
          ),
          "default",
        ),
      }),
      v.description("The cluster kubemeta watches."),
    ),
    {},
  ),
  log: v.optional(
    v.pipe(
      v.strictObject({
        level: v.optional(
          v.pipe(
            v.picklist(LOG_LEVELS),
            v.description("Least severe level written: `debug`, `info`, `warn` or `error`."),
          ),
          "info",
        ),
      }),
      v.description("The process's own log: JSON lines on stdout."),
    ),
    {},
  ),
  store: v.optional(
    v.pipe(
      v.looseObject({
        ...pluginEntry.entries,
        retention: v.optional(
          v.pipe(
            retentionSchema,
            v.description("Pruning of the update log (never of the current state), whatever the store."),
          ),
          {},
        ),
      }),
      v.description("The store: a plugin entry (`type`, `name`, the plugin's own keys) and `retention`."),
    ),
    { type: "libsql" },
  ),
  // Nullish: a list written empty (`sinks:`, its entries commented out, a template's nil) is none, as `[]` is.
  sources: v.nullish(
    v.pipe(v.array(pluginEntry), v.description("The sources, each a plugin entry; written empty (`sources:`), none.")),
    [],
  ),
  sinks: v.nullish(
    v.pipe(v.array(pluginEntry), v.description("The sinks, each a plugin entry; written empty (`sinks:`), none.")),
    [],
  ),
  http: v.optional(v.pipe(httpSchema, v.description("The HTTP listener, shared by the host and every plugin.")), {}),
  shutdownTimeout: v.optional(
    v.pipe(
      positiveDuration,
      v.description(
        "How long shutdown (SIGTERM, SIGINT) may take. Past it, e.g. while the store keeps failing, kubemeta logs " +
          "what it could not commit and what it still waited for (a sink's cursor save, the store's close), and " +
          "exits 1; the sources deliver what was not committed again on the next start, and a sink whose cursor " +
          "was not saved what it delivered since its saved one.",
      ),
    ),
    "15s",
  ),
  slim: v.optional(
    v.pipe(
      slimSchema,
      v.description("What slim copies keep besides each kind's built-in fields ([Slim rules](#slim-rules))."),
    ),
    {},
  ),
  ha: v.optional(
    v.pipe(
      haSchema,
      v.description("Replicas on a shared store with one elected leader ([High availability](#high-availability))."),
    ),
    {},
  ),
});
