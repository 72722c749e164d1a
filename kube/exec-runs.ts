/**
 * The runs of a kubeconfig's exec plugin, ended when nothing will wait for them any more: at the close of the last
 * transport waiting for one (a source's stop, an ha term's end) and at kubemeta's exit. client-node spawns the plugin
 * and waits for it without a deadline, and kills it never: one that does not exit (a cloud CLI waiting on a network
 * that does not answer) would outlive kubemeta, orphaned, with one more left behind at each start of a source. Each
 * run gets a process group of its own, so that what the plugin started (a wrapper script's CLI, a shell's `sleep`)
 * ends with it. What a run prints is taken only if of the apiVersion the kubeconfig names, as client-go takes it.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import type { KubeConfig, User } from "@kubernetes/client-node";

/**
 * client-node's exec authenticator, as much of it as is replaced: its private `execFn`, `child_process.spawn`,
 * `tokenCache`, the credentials its runs printed by user name, and `getCredential`, which runs the plugin unless the
 * cache has a credential that has not expired.
 */
interface ExecAuthenticator {
  execFn: (command: string, args: readonly string[] | undefined, options: SpawnOptions) => ChildProcess;
  tokenCache: Record<string, unknown>;
  getCredential(user: User): Promise<unknown>;
}

/**
 * What the transports of one exec plugin configuration share (its command, args, env, and the cluster it is told of:
 * client-go's key): client-go's authenticators are one per configuration in a process, so the transports of one
 * plugin (the ha Lease's, the sources', a source started again) share what one run printed until it expires or a 401
 * refuses it, and wait for the run under way rather than start another. client-node's are one per KubeConfig: a run
 * for each.
 */
interface Plugin {
  /** client-node's tokenCache, which it keys by user name: its one entry is under CREDENTIAL, whoever asked. */
  credentials: Record<string, unknown>;
  /** The credential being worked out (the cache read, or a run). */
  working?: Promise<unknown>;
  /** The run `working` waits for, while it runs. */
  run?: ChildProcess;
  /** How its last run ended (`exited with code 3`, `was killed by SIGKILL`). */
  lastExit: string;
}
const plugins = new Map<string, Plugin>();
/**
 * The user name client-node is told for the configuration's credential: the kubeconfigs of the Lease and of a source
 * may name their users apart, and client-go's cache has no user in its key.
 */
const CREDENTIAL = "credential";

/** What `kc`'s current user's plugin shares, if it has one. */
function pluginOf(kc: KubeConfig): Plugin | undefined {
  const exec = kc.getCurrentUser()?.exec;
  if (!exec) return undefined;
  const key = JSON.stringify(exec);
  const plugin = plugins.get(key) ?? { credentials: {}, lastExit: "" };
  plugins.set(key, plugin);
  return plugin;
}

/** A plugin's output that client-go refuses: the message says what it printed, never quoting a credential. */
export class ExecCredentialError extends Error {}

/** A group and version as an apiVersion names them, which a message may quote. */
const GROUP_VERSION = /^[a-z0-9.-]{1,80}\/v[a-z0-9]{1,20}$/;

/**
 * Why `credential` is not of the `apiVersion` the kubeconfig names, if it is not: client-go takes no other ("exec
 * plugin is configured to use API version …, plugin returned version …"), where client-node takes any JSON. Output
 * that is no JSON object, or one without a status (`{}`: no ExecCredential at all), is transport.ts's to say.
 */
function wrongVersion(credential: unknown, apiVersion: unknown): string | undefined {
  if (typeof credential !== "object" || credential === null || !("status" in credential)) return undefined;
  if (typeof apiVersion !== "string") return undefined;
  const printed = (credential as { apiVersion?: unknown }).apiVersion;
  if (printed === apiVersion) return undefined;
  const of =
    typeof printed === "string" && GROUP_VERSION.test(printed) ? `of ${printed}` : "without an apiVersion it knows";
  return `printed an ExecCredential ${of}, where the kubeconfig names ${apiVersion} (kubectl refuses it too)`;
}

/** What a refused request carried: its `Authorization` header and client certificate. */
export interface Refused {
  authorization: string | null;
  cert: unknown;
}

/**
 * Forgets the credential `kc`'s plugin printed (a 401 refused it, or it is unusable): the next request, of any
 * transport, runs it. Not when `refused` carried another, as client-go compares them: a late 401, to a request sent
 * before a run printed the credential kept now, would cost one more run.
 */
export function forgetExecCredential(kc: KubeConfig, refused?: Refused): void {
  const plugin = pluginOf(kc);
  if (!plugin) return;
  const kept = plugin.credentials[CREDENTIAL] as { status?: { token?: string; clientCertificateData?: string } };
  if (refused && kept?.status && !carried(refused, kept.status)) return;
  delete plugin.credentials[CREDENTIAL];
}

/** Whether `refused` carried `status`'s token and certificate, as transport.ts's fetchOptions puts them. */
function carried(refused: Refused, status: { token?: string; clientCertificateData?: string }): boolean {
  const authorization = status.token ? `Bearer ${status.token}`.trim() : null;
  return refused.authorization === authorization && refused.cert === status.clientCertificateData;
}

/** How the last run of `kc`'s plugin ended, for a failure client-node says with its stderr alone; "" if unknown. */
export function lastExecExit(kc: KubeConfig): string {
  return pluginOf(kc)?.lastExit ?? "";
}

/**
 * Every run in flight, whichever transport started it, with the transports waiting for it (each by its set of runs):
 * the one that started it and those that joined it. Killed when the last of them closes, and at exit.
 */
const waiters = new Map<ChildProcess, Set<Set<ChildProcess>>>();

/** The transport of `runs` waits for `run` until it ends or the transport closes. */
function waitFor(run: ChildProcess, runs: Set<ChildProcess>): void {
  runs.add(run);
  waiters.get(run)?.add(runs);
}
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
 * Has `kc`'s exec plugin run so that each run the transport of `runs` starts or joins is in `runs` until it is over
 * (its output closed), and is killed at kubemeta's exit if still running; its runs and what they print shared by the
 * transports of its configuration.
 * Throws when client-node no longer has the authenticator replaced here: an upgrade would otherwise bring back,
 * silently, the plugins left behind, and the runs for each transport.
 */
export function trackExecRuns(kc: KubeConfig, runs: Set<ChildProcess>): void {
  const authenticators = (kc as unknown as { authenticators?: object[] }).authenticators ?? [];
  const execAuth = authenticators.find((each) => "execFn" in each) as ExecAuthenticator | undefined;
  if (!execAuth || !("tokenCache" in execAuth) || typeof execAuth.getCredential !== "function")
    throw new Error("@kubernetes/client-node has no exec authenticator with an execFn, a tokenCache, getCredential");
  const plugin = pluginOf(kc);
  if (plugin) {
    execAuth.tokenCache = plugin.credentials;
    const getCredential = execAuth.getCredential.bind(execAuth);
    execAuth.getCredential = (user) => {
      if (!plugin.working) {
        const printed = getCredential({ ...user, name: CREDENTIAL }).then((credential) => {
          const wrong = wrongVersion(credential, (kc.getCurrentUser()?.exec as { apiVersion?: unknown })?.apiVersion);
          if (!wrong) return credential;
          delete plugin.credentials[CREDENTIAL]; // client-go keeps no such credential: the next request runs it again
          throw new ExecCredentialError(wrong);
        });
        const working = printed.finally(() => {
          // Forgotten already if its run was killed: a later request's is under way.
          if (plugin.working === working) plugin.working = undefined;
        });
        plugin.working = working;
      }
      // Joined by this transport too: another's close leaves it running for this one (client-go never kills it).
      if (plugin.run) waitFor(plugin.run, runs);
      return plugin.working;
    };
  }
  execAuth.execFn = (command, args, options) => {
    // Its stdin at its end (/dev/null), as client-go gives a plugin that may not prompt none: client-node's would be
    // a pipe nobody writes nor closes, so a plugin asking for a password (no login cached) waited on it for good.
    const run = spawn(command, args ?? [], { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    if (!exitListened) {
      exitListened = true;
      process.on("exit", () => [...waiters.keys()].forEach(kill));
    }
    waiters.set(run, new Set());
    waitFor(run, runs);
    if (plugin) plugin.run = run;
    // Before client-node's own listener, which rejects with its stderr alone: how it ended is known when that is said.
    run.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      for (const each of waiters.get(run) ?? []) each.delete(run);
      waiters.delete(run);
      if (plugin?.run === run) plugin.run = undefined;
      if (plugin) plugin.lastExit = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    });
    return run;
  };
}

/**
 * The transport of `runs` closes: it waits for none of them any more, and a run no other transport waits for is
 * killed. A request from now on runs the plugin anew rather than join a run killed, whose end is heard a moment later.
 */
export function endExecRuns(runs: Set<ChildProcess>): void {
  for (const run of runs) {
    const others = waiters.get(run);
    others?.delete(runs);
    if (others?.size) continue;
    for (const plugin of plugins.values()) {
      if (plugin.run !== run) continue;
      plugin.working = undefined;
      plugin.run = undefined;
    }
    kill(run);
  }
  runs.clear();
}
