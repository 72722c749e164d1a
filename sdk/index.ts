/**
 * The plugin SDK, `kubemeta/sdk`: everything a plugin module imports from kubemeta. A
 * plugin in any folder imports it by package name, so it runs against the kubemeta that
 * loads it (README, "Write a sink plugin": inside the repository, from an installed
 * package, in the container image).
 *
 * `v` is kubemeta's own valibot: a plugin's schema built with it is validated by the
 * host's copy, whatever version the plugin's folder may hold.
 *
 * @example
 * ```ts
 * import { batchSchema, consume, defineSink, retrySchema, v } from "kubemeta/sdk";
 * ```
 */
export * as v from "valibot";

export {
  BehindRetentionError,
  defineSink,
  defineSource,
  defineStore,
  isBehindRetention,
  isStoreReplaced,
  isStoreTooNew,
  isWriterFenced,
  type AnyDeclaration,
  type ChangeSink,
  type CommitBatch,
  type CommittedLog,
  type Declaration,
  type EpochChange,
  type FollowOptions,
  type Leadership,
  type Lifecycle,
  type LogQuery,
  type ObjectDigest,
  type ObjectQuery,
  type PluginContext,
  type PolicyRule,
  type Relist,
  type RetentionPolicy,
  type Sink,
  type SinkContext,
  type SinkDeclaration,
  type Source,
  type SourceContext,
  type SourceDeclaration,
  type Store,
  type StoreContext,
  type StoreDeclaration,
  StoreReplacedError,
  StoreTooNewError,
  type StoreState,
  type UpdateQuery,
  WriterFencedError,
} from "./contract.ts";
export type { PreparedChange, PreparedChanges, PreparerModule, PreparerSpec } from "./prepared.ts";
export { consume, type BatchSettings, type Consumer, type ConsumeOptions, type RetrySettings } from "./consume.ts";
export {
  jsonText,
  inStream,
  stringifyWithRaw,
  toEnvelope,
  type CurrentObject,
  type KubeObject,
  type Update,
} from "./model.ts";
export type { Counter, Gauge, Histogram, Labels, LogFields, Logger, Metrics } from "./telemetry.ts";
export {
  age,
  alias,
  batchSchema,
  batchSizeSchema,
  deprecatedKey,
  duration,
  guessedKeys,
  initialWithinMax,
  parseDuration,
  port,
  kindName,
  positiveDuration,
  positiveInt,
  retrySchema,
  stallAfterSchema,
  streamName,
  warnDeprecated,
  type BatchSchemaOptions,
  type DeprecatedKey,
  type RetrySchemaOptions,
} from "./schema.ts";
export { appendLines, type AppendLinesOptions } from "./append-lines.ts";
export { tildeProblem } from "./tilde.ts";
export { CredentialFileError, readCredentialFile, readCredentialFileSync } from "./credential-file.ts";
export type { ChangeType, Envelope, SlimObject } from "../protocol/envelope.ts";
export { ALL, isStreamName, NODE_PREFIX, nodeOfStream, SHARED, STREAM_NAME_RULE } from "../protocol/streams.ts";
