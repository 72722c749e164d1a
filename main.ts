/**
 * kubemeta: `bun run main.ts [--config kubemeta.yaml] [--check]`, `--demo`, `rbac`, `new-epoch` (cli/main.ts), or
 * `tail …` (cli/tail.ts). Signals are listened for before anything else loads: a SIGTERM while kubemeta starts stops
 * it once started.
 */
import { listenEarly } from "./cli/signals.ts";
import { readCommand } from "./cli/command.ts";

const signals = listenEarly();
const args = process.argv.slice(2);

async function run(): Promise<number> {
  // `tail` needs the client library alone: loaded without the host, its plugins and the Kubernetes client, it starts
  // in a fraction of the time, as a terminal's (and a script's) command should.
  if (args[0] === "tail") return (await import("./cli/tail.ts")).runTail(args.slice(1), signals.stop);
  // Read before the rest loads: --help and bad arguments are answered without it.
  const command = readCommand(args);
  if (typeof command === "number") {
    await signals.release();
    return command;
  }
  return (await import("./cli/main.ts")).main(command, signals);
}

try {
  process.exit(await run());
} catch (error) {
  process.stderr.write(`kubemeta: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
