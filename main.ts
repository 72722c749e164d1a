/**
 * kubemeta: `bun run main.ts [--config kubemeta.yaml] [--check]`, `--demo`, `rbac`, or `tail …` (cli/main.ts).
 * Signals are listened for before anything else loads: a SIGTERM while kubemeta starts stops it once started.
 */
import { listenEarly } from "./cli/signals.ts";

const signals = listenEarly();
const { main } = await import("./cli/main.ts");
try {
  process.exit(await main(process.argv.slice(2), signals));
} catch (error) {
  process.stderr.write(`kubemeta: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
