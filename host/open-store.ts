/**
 * The host's first step: the config's store opened (created or migrated), given up when a stop comes first; the
 * context every plugin is created with; the config's warnings (deprecated keys, the plugins' own). `--check` opens
 * the store the same way (check-config.ts).
 */
import type { Config, Resolved } from "./config.ts";
import type { Logger, Metrics } from "../sdk/telemetry.ts";
import {
  isStoreTooNew,
  type PluginContext,
  type Store,
  type StoreContext,
  type StoreDeclaration,
} from "../sdk/contract.ts";
import type { AnyDeclaration } from "../sdk/declaration.ts";
import { aborted, TIMED_OUT, until } from "../protocol/retry.ts";
import { PLUGIN_DEADLINE_MS } from "./supervise.ts";
import { warnDeprecated } from "../sdk/schema.ts";
import { notAList } from "./config-entry-checks.ts";

/** A stop was asked for before the store was open: nothing started, nothing to stop. */
export class StartAbandoned extends Error {
  constructor() {
    super("stopped before the store was open");
    this.name = "StartAbandoned";
  }
}

/** The host could not start; the cause is already logged, in one line that says what failed. */
export class StartFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartFailed";
  }
}

export function pluginContext(config: Pick<Config, "cluster">, logger: Logger, metrics: Metrics) {
  return (name: string, kind: string): PluginContext => ({
    name,
    cluster: config.cluster,
    logger: logger.child({ [kind]: name }),
    metrics,
  });
}

/**
 * Once at start, whatever a plugin's create does (retried, or once a term), as `--check` warns of them: the durations
 * written as bare numbers under a second; through its plugin's logger, the old keys an entry wrote (config-entries.ts
 * finds them) and the plugin's own warnings.
 */
export async function warnOfConfig(
  config: Config,
  context: ReturnType<typeof pluginContext>,
  logger: Logger,
): Promise<void> {
  for (const line of config.durations) logger.warn(line);
  const sections = { store: [config.store], source: config.sources, sink: config.sinks };
  for (const [kind, entries] of Object.entries(sections))
    for (const entry of entries) {
      const { logger } = context(entry.name, kind);
      warnDeprecated(logger, entry.deprecated);
      for (const warning of await pluginWarnings(entry)) logger.warn(warning);
    }
}

/**
 * A plugin's own warnings (Declaration.warnings); one that throws has none: its check or its start says why. So has
 * one that does not settle within the plugins' deadline, as a check is given up on: a start or --check goes on.
 */
export async function pluginWarnings({ declaration, config }: Resolved<AnyDeclaration>): Promise<string[]> {
  try {
    const said = await until(Promise.resolve(declaration.warnings?.(config as never)), Date.now() + PLUGIN_DEADLINE_MS);
    if (said === TIMED_OUT || said === undefined) return [];
    // A plugin in JavaScript, or run unchecked, meets no type: a string would be said letter by letter.
    const other = notAList(said, (line) => typeof line === "string");
    return other === undefined ? said : [`its plugin's warnings() returned ${other}, not a list of strings`];
  } catch {
    return [];
  }
}

export interface StoreStartOptions {
  /** A stop asked for: the open is given up (StartAbandoned). */
  signal?: AbortSignal;
  /** StoreContext.replaced. */
  replaced?: StoreContext["replaced"];
}

/**
 * Opens (creating or migrating) the config's store; one that cannot be opened is closed again and its cause thrown.
 * A stop asked for meanwhile gives the open up: StartAbandoned.
 */
export async function startStore(
  entry: Resolved<StoreDeclaration>,
  context: ReturnType<typeof pluginContext>,
  logger: Logger,
  { signal, replaced }: StoreStartOptions = {},
) {
  const { declaration, name } = entry;
  const abandon = () => {
    logger.info("stopped before the store was open", { store: name });
    return new StartAbandoned();
  };
  if (signal?.aborted) throw abandon();
  const store: Store = declaration.create(entry.config, { ...context(name, "store"), replaced });
  const opening = (async () => {
    const state = await store.start();
    return { store, state, horizons: await store.horizons?.() };
  })();
  try {
    const opened = await Promise.race([opening, signal ? aborted(signal) : new Promise<never>(() => {})]);
    if (opened) return opened;
    // Closed once its open ends, whichever way: the process is on its way out, and nothing waits for it.
    void opening.then(
      () => store.stop(),
      () => store.stop(),
    );
    throw abandon();
  } catch (error) {
    if (error instanceof StartAbandoned) throw error;
    // Closes what the failed start left open; the cause worth reporting is the start's own.
    await store.stop().catch(() => {});
    throw error;
  }
}

/**
 * With `ha`, a store too new for this replica was migrated by a replica of a later release on it: another store would
 * split the deployment (this replica following a store nobody else writes), so the way out is the later release.
 */
const NEWER_THAN_THIS_REPLICA =
  "a replica of a later kubemeta migrated this shared store: run this replica on that release (a rolling update " +
  "replaces it; until then it exits at each start while the others serve), not on another store";

/**
 * What to do about a store that cannot be opened, beyond what its error says, if anything: a start logs it as `hint`,
 * `--check` says it after the error.
 */
export function storeOpenHint(config: Pick<Config, "ha">, error: unknown): string | undefined {
  return config.ha && isStoreTooNew(error) ? NEWER_THAN_THIS_REPLICA : undefined;
}

/** startStore, at start: a store that cannot be opened is one error line, then StartFailed. */
export async function openStore(
  config: Config,
  context: ReturnType<typeof pluginContext>,
  logger: Logger,
  options: StoreStartOptions,
) {
  try {
    return await startStore(config.store, context, logger, options);
  } catch (error) {
    if (error instanceof StartAbandoned) throw error;
    const { declaration, name } = config.store;
    const hint = storeOpenHint(config, error);
    logger.error("store cannot be opened", { store: name, type: declaration.type, error, ...(hint ? { hint } : {}) });
    throw new StartFailed(`store ${name} cannot be opened`);
  }
}
