/**
 * The runs of a kubeconfig's exec plugin, ended when nothing will wait for them any more: at a transport's close (a
 * source's stop, an ha term's end) and at kubemeta's exit. client-node spawns the plugin and waits for it without a
 * deadline, and kills it never: one that does not exit (a cloud CLI waiting on a network that does not answer) would
 * outlive kubemeta, orphaned, with one more left behind at each start of a source. Each run gets a process group of
 * its own, so that what the plugin started (a wrapper script's CLI, a shell's `sleep`) ends with it.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import type { KubeConfig } from "@kubernetes/client-node";

/**
 * client-node's exec authenticator, as much of it as is replaced: its private `execFn`, `child_process.spawn`, and
 * `tokenCache`, the credentials its runs printed by user name.
 */
interface ExecAuthenticator {
  execFn: (command: string, args: readonly string[] | undefined, options: SpawnOptions) => ChildProcess;
  tokenCache: Record<string, unknown>;
}

/**
 * The credentials of each exec plugin configuration in this process (its command, args, env, and the cluster it is
 * told of: client-go's key), by user name: client-go's authenticators are one per configuration in a process, so the
 * transports of one plugin (the ha Lease's, a source's, a source started again) share what one run printed until it
 * expires or a 401 refuses it. client-node's are one per KubeConfig: a run for each.
 */
const credentials = new Map<string, Record<string, unknown>>();

/** The credentials `kc`'s current user's plugin shares, if it has one. */
function sharedCredentials(kc: KubeConfig): Record<string, unknown> | undefined {
  const exec = kc.getCurrentUser()?.exec;
  if (!exec) return undefined;
  const key = JSON.stringify(exec);
  const shared = credentials.get(key) ?? {};
  credentials.set(key, shared);
  return shared;
}

/** Forgets the credential `kc`'s plugin printed (a 401 refused it): the next request, of any transport, runs it. */
export function forgetExecCredential(kc: KubeConfig): void {
  const shared = sharedCredentials(kc);
  if (shared) delete shared[kc.getCurrentUser()!.name];
}

/** Every run in flight, whichever transport started it: killed at exit. */
const everyRun = new Set<ChildProcess>();
let exitListened = false;

/**
 * As Go's exec.CommandContext ends a command (client-go's way): SIGKILL, which a plugin cannot ignore; at exit
 * nothing could wait for a gentler signal to take effect. The whole group: the plugin's own children too.
 */
function kill(run: ChildProcess): void {
  if (run.pid === undefined) return;
  try {
    process.kill(-run.pid, "SIGKILL");
  } catch {
    // Its group is gone already: it ended as it was being killed.
  }
}

/**
 * Has `kc`'s exec plugin run so that each run is in `runs` until it is over (its output closed), then said to `onExit`
 * (`exited with code 3`, `was killed by SIGKILL`), and is killed at kubemeta's exit if still running, and what it
 * prints shared by the transports of its configuration. Throws when
 * client-node no longer has the authenticator replaced here: an upgrade would otherwise bring back, silently, the
 * plugins left behind.
 */
export function trackExecRuns(kc: KubeConfig, runs: Set<ChildProcess>, onExit: (how: string) => void): void {
  const authenticators = (kc as unknown as { authenticators?: object[] }).authenticators ?? [];
  const execAuth = authenticators.find((each) => "execFn" in each) as ExecAuthenticator | undefined;
  if (!execAuth || !("tokenCache" in execAuth))
    throw new Error("@kubernetes/client-node has no exec authenticator with an execFn and a tokenCache");
  execAuth.tokenCache = sharedCredentials(kc) ?? execAuth.tokenCache;
  execAuth.execFn = (command, args, options) => {
    // Its stdin at its end (/dev/null), as client-go gives a plugin that may not prompt none: client-node's would be
    // a pipe nobody writes nor closes, so a plugin asking for a password (no login cached) waited on it for good.
    const run = spawn(command, args ?? [], { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    if (!exitListened) {
      exitListened = true;
      process.on("exit", () => everyRun.forEach(kill));
    }
    runs.add(run);
    everyRun.add(run);
    // Before client-node's own listener, which rejects with its stderr alone: how it ended is known when that is said.
    run.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      runs.delete(run);
      everyRun.delete(run);
      onExit(signal ? `was killed by ${signal}` : `exited with code ${code}`);
    });
    return run;
  };
}

/** Kills the runs still in flight of `runs`: nothing waits for them any more. */
export function endExecRuns(runs: Set<ChildProcess>): void {
  runs.forEach(kill);
}
