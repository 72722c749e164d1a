/**
 * The plugin contract: what a source, a store and a sink declare, and what the host
 * hands each of them. A plugin is one module whose default export is a declaration:
 * its `type`, a valibot schema for its config, and `create(config, ctx)` returning
 * `{ start, stop }`. Built-ins (plugins/) use `defineSource`, `defineStore` or
 * `defineSink` and import from sdk/, protocol/ and kube/ (the Kubernetes API client) only,
 * never from another plugin (README, Architecture). Some of the sdk/ files they use
 * (http.ts, thread.ts, priority.ts, resume.ts, resource-version.ts) are not part of `kubemeta/sdk`.
 *
 * A custom plugin lives anywhere and is named by path in the config
 * (`type: ./plugins/my-sink.ts`, relative to the config file). It imports
 * `kubemeta/sdk` (sdk/index.ts: this contract, `consume`, the schema pieces and `v`,
 * kubemeta's own valibot), which resolves to the kubemeta that loads it: inside the
 * repository, from a folder where kubemeta is installed, or in the container image.
 * examples/sink-plugin/ is a complete one, with its test.
 *
 * A sink writes only its output: `consume(ctx, { deliver })` (sdk/consume.ts) reads the
 * log from the sink's cursor, calls `deliver` with each batch of envelopes, saves the
 * cursor after it, retries a batch whose `deliver` throws (backoff, counted), goes on
 * after retention, keeps `kubemeta_sink_lag_versions` and reports a batch held too long.
 * The host (host/supervise.ts) retries a start that throws with backoff, stops a start not
 * finished after 10 s and creates the plugin again, and gives up on a stop that hangs after
 * 10 s. Each sink reads the log on its own, so a slow or
 * stuck sink delays nobody else.
 *
 * @example A sink that writes each update of a stream to stdout, at least once, in order:
 * ```ts
 * import { consume, defineSink, streamName, v } from "kubemeta/sdk";
 *
 * export default defineSink({
 *   type: "stdout",
 *   description: "Prints updates.",
 *   schema: v.strictObject({ stream: v.optional(streamName, "all") }),
 *   create: (config, ctx) =>
 *     consume(ctx, {
 *       stream: config.stream,
 *       async deliver(envelopes) {
 *         for (const envelope of envelopes) console.log(JSON.stringify(envelope));
 *       },
 *     }),
 * });
 * ```
 */
import type { Logger, Metrics } from "./telemetry.ts";

/**
 * Start and stop. Both are safe to call twice; stop is safe without start.
 *
 * `start` resolves once the plugin runs (a sink's loop runs in the background; do not
 * await it there); when it throws, or has not resolved after 10 s, the host retries it with
 * backoff (the latter on a new instance, this one stopped). `stop` ends all
 * the plugin started (abort your signals, clear your timers) and should await its loops,
 * so that an error they ended on is reported.
 */
export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What every plugin receives. */
export interface PluginContext {
  /** The instance name from the config (defaults to the type); unique per kind. */
  name: string;
  /** The cluster name from the config. */
  cluster: string;
  /** JSON lines, already labelled with the plugin's kind and name. */
  logger: Logger;
  /**
   * The one Prometheus registry (/metrics). Registering a name again as the same type
   * returns the same metric; as another type, or a name or label name Prometheus does not
   * allow, a counter's negative increment or a bucket that is not finite, it throws. Label
   * your series with `{ sink: ctx.name }` (or `source`, `store`) so two instances of one
   * plugin stay apart.
   */
  metrics: Metrics;
}

// What a source is handed and how it tells the core of changes (ChangeSink, Relist, SourceContext): source-contract.ts.
export * from "./source-contract.ts";

// What a store implements and what it is asked (Store, StoreState, queries, WriterFencedError): store-contract.ts.
export * from "./store-contract.ts";

// What a sink is handed and how it reads the log (CommittedLog, SinkContext, BehindRetentionError): sink-contract.ts.
export * from "./sink-contract.ts";

// How a plugin declares itself (its type, schema, factory), which names the contexts of each part: declaration.ts.
export * from "./declaration.ts";
