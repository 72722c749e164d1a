/**
 * How a plugin declares itself: the default export of its module, made with `defineSource`, `defineStore` or
 * `defineSink` (sdk/contract.ts says what each is handed and must do). The declaration is plain data and a
 * factory: the host validates the config entry against `schema`, then calls `create`.
 */
import type * as v from "valibot";
import type { Sink, SinkContext, Source, SourceContext, Store, StoreContext } from "./contract.ts";

/** One rule of a Kubernetes ClusterRole (rbac.authorization.k8s.io/v1 PolicyRule). */
export interface PolicyRule {
  /** API groups; "" is the core group. */
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  /** Needed in this namespace only (the plugin reads nothing of the resource elsewhere): a Role there. */
  namespace?: string;
}

export interface Declaration<K extends string, S extends v.GenericSchema, C, I> {
  kind: K;
  /** The `type` a config entry names. */
  type: string;
  /**
   * What the plugin does, in one line, for a reader of its module. kubemeta prints it nowhere: the config docs
   * (scripts/config-docs.ts) are made from the schema's `v.description`s.
   */
  description: string;
  /** Single source of truth for the config: defaults, validation, docs. Use v.strictObject. */
  schema: S;
  /**
   * A config that validates, for docs and the contract test (defaults to `{}`).
   * tests/contract.test.ts checks it and the lifecycle of every built-in.
   */
  example?: v.InferInput<S>;
  /**
   * Makes an instance: no I/O here, that is `start`'s. The host may call it again for a
   * sink that failed, with the same config and context.
   */
  create(config: v.InferOutput<S>, context: C): I;
  /**
   * What `--check` can prove of a config without starting anything (a file it names loads); throws what is wrong.
   * Only what the config itself names: a check must pass wherever the config is checked, outside the cluster too.
   */
  check?(config: v.InferOutput<S>): void | Promise<void>;
  /**
   * What of a config that works is unsafe (a credential sent in clear text), each one line naming the keys, never a
   * value: `--check` prints them and a start logs them (the plugin's logger). May read what `check` reads; a problem
   * reading it is check's to say, and a start's: no warning then. Async as `check` may be: what it reads may be loaded
   * only when read (the kubernetes source loads the Kubernetes client only for a kubeconfig the config names).
   */
  warnings?(config: v.InferOutput<S>): string[] | Promise<string[]>;
  /**
   * What only one entry of a config may hold, said as a noun (`the route GET /v1/watch`): a config with two entries
   * that claim the same is refused, the second one naming the first.
   */
  claims?(config: v.InferOutput<S>): string[];
  /**
   * The Kubernetes RBAC rules this plugin's config needs, for a plugin that talks to the
   * API server: `bun run main.ts rbac` prints the ClusterRole of every plugin's rules.
   */
  rbac?(config: v.InferOutput<S>): PolicyRule[];
}

export type SourceDeclaration<S extends v.GenericSchema = v.GenericSchema> = Declaration<
  "source",
  S,
  SourceContext,
  Source
>;
export type StoreDeclaration<S extends v.GenericSchema = v.GenericSchema> = Declaration<
  "store",
  S,
  StoreContext,
  Store
> & {
  /**
   * Why several replicas cannot share this store as configured (e.g. a file on one pod's volume), or undefined
   * when they can. `ha` needs a store every replica reaches; a store without this method is taken as local.
   */
  unshareable?(config: v.InferOutput<S>): string | undefined;
};
export type SinkDeclaration<S extends v.GenericSchema = v.GenericSchema> = Declaration<"sink", S, SinkContext, Sink>;
export type AnyDeclaration = SourceDeclaration | StoreDeclaration | SinkDeclaration;

export function defineSource<S extends v.GenericSchema>(d: Omit<SourceDeclaration<S>, "kind">): SourceDeclaration<S> {
  return { kind: "source", ...d };
}
export function defineStore<S extends v.GenericSchema>(d: Omit<StoreDeclaration<S>, "kind">): StoreDeclaration<S> {
  return { kind: "store", ...d };
}
export function defineSink<S extends v.GenericSchema>(d: Omit<SinkDeclaration<S>, "kind">): SinkDeclaration<S> {
  return { kind: "sink", ...d };
}

/** The plugins a config's `type` may name, by kind. */
export interface PluginRegistry {
  source: SourceDeclaration[];
  store: StoreDeclaration[];
  sink: SinkDeclaration[];
}
