/**
 * `main.ts new-epoch`: the config's store given a new epoch (Store.newEpoch), its log kept. After restoring an older
 * copy of the store, the versions after the copy's head would be issued again for other updates, under the epoch its
 * consumers hold positions of: with a new one, each of them resets on its next resume (README, `store`).
 */
import type { Config } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { pluginContext } from "../host/open-store.ts";

/** Gives the store its new epoch and says which; resolves with the exit code (1 with one line on stderr). */
export async function newEpoch(config: Config): Promise<number> {
  // As --check: the store's info lines while it is opened are not for the operator.
  const logger = createLogger({ level: "error" });
  const { declaration, name } = config.store;
  const store = declaration.create(config.store.config, pluginContext(config, logger, createMetrics())(name, "store"));
  if (!store.newEpoch) {
    process.stderr.write(`kubemeta: new-epoch: a store of type ${declaration.type} cannot be given a new epoch\n`);
    return 1;
  }
  try {
    const { previous, epoch, head } = await store.newEpoch();
    process.stdout.write(
      `epoch ${previous} replaced by ${epoch}; head ${head} kept (the next update is version ${head + 1}): ` +
        "every consumer resets when it resumes\n",
    );
    return 0;
  } catch (error) {
    process.stderr.write(`kubemeta: new-epoch: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
