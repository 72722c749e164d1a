/**
 * The command line of a serve, --check, --demo, rbac and new-epoch (USAGE), read by main.ts before the rest of
 * kubemeta loads: `--help` and bad arguments are answered in a moment, not once the host, its plugins and the
 * Kubernetes client have loaded (most of a second).
 */
import { argumentProblem, parseOptions } from "./args.ts";

export const USAGE = `Usage: bun run main.ts [options]
       bun run main.ts tail (--url <url> | --nats <servers> --cluster <name>) [--stream <name>] [--json]
       bun run main.ts rbac [--config <file>]
       bun run main.ts new-epoch [--config <file>]

  tail              follow streams from the terminal, as readable lines or JSON (tail --help: every option)
  rbac              print the ClusterRole the config needs (list, watch on what it watches) and,
                    with ha, the Role of its Lease (in ha.lease.namespace, else POD_NAMESPACE, else
                    default, with a warning on stderr)
  new-epoch         give the config's store a new epoch, its log and versions kept, so that every consumer
                    resets when it resumes: after restoring an older copy of the store, kubemeta stopped
                    (refused while another process has a file: store open)

  --config <file>   YAML or JSON config (default: ./kubemeta.yaml if present, else built-in defaults:
                    the kubernetes source with your kubeconfig, a libSQL file in ./data, SSE on :8080)
  --check           validate the config, load the kubeconfig a source names, open (or create) the store,
                    then exit (0 valid, 1 with every error: each at its path under "invalid config:")
  --port <n>        HTTP port, overriding the config's http.port (0 picks a free one)
  --demo            run against a built-in simulated cluster (no cluster or config needed; store in ./data/demo)
  --help            this text

Exit codes: 0 done (a check passed, a new epoch given, a shutdown completed), 1 an invalid config, a failed start
or shutdown, a new epoch refused, or a store replaced under kubemeta (one line says why), 2 bad arguments.
`;

/** The options of a serve, --check, --demo, rbac and new-epoch (USAGE says each). */
const OPTIONS = {
  config: { type: "string" },
  check: { type: "boolean", default: false },
  help: { type: "boolean", default: false },
  port: { type: "string" },
  demo: { type: "boolean", default: false },
} as const;

/** The commands that read a config and take --config alone, each with what it does (its usage error says it). */
const CONFIG_COMMANDS = {
  rbac: "rbac prints the roles of a config",
  "new-epoch": "new-epoch gives the config's store a new epoch",
} as const;

/** What the command line asks cli/main.ts to do. */
export interface Command {
  /** `rbac` or `new-epoch`: a command that reads a config and takes --config alone. */
  configCommand?: keyof typeof CONFIG_COMMANDS;
  /** --config's file (undefined: ./kubemeta.yaml if there is one, else the built-in default). */
  config?: string;
  check: boolean;
  demo: boolean;
  /** --port, overriding the config's http.port. */
  port?: number;
}

/** The command `args` name, or the exit code of one answered already: its usage (0) or what is wrong with it (2). */
export function readCommand(args: string[]): Command | number {
  const [first, ...rest] = args;
  const configCommand =
    first !== undefined && Object.hasOwn(CONFIG_COMMANDS, first) ? (first as keyof typeof CONFIG_COMMANDS) : undefined;
  let values: ReturnType<typeof parseOptions<typeof OPTIONS>>;
  try {
    values = parseOptions(configCommand ? rest : args, OPTIONS);
  } catch (error) {
    return usageError(argumentProblem(error));
  }
  // `--config "$CONFIG"` with the variable unset: not the default config, which would serve something else.
  if (values.config === "") return usageError("--config: expected a file, got an empty value");
  if (values.demo && (values.config !== undefined || values.check))
    return usageError("--demo runs its own cluster and config: it takes --port, not --config or --check");
  if (configCommand && (values.demo || values.check || values.port !== undefined))
    return usageError(`${CONFIG_COMMANDS[configCommand]}: it takes --config alone`);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = values.port === undefined ? undefined : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
  if (port !== undefined && !(port >= 0 && port <= 65535))
    return usageError(`--port: expected a port number (0-65535), got "${values.port}"`);
  return { configCommand, config: values.config, check: values.check, demo: values.demo, port };
}

/** Bad arguments: one line, as `tail` says it, and exit 2. */
function usageError(message: string): number {
  process.stderr.write(`kubemeta: ${message} (see --help)\n`);
  return 2;
}
