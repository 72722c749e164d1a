/**
 * Kubeconfig files read as kubectl reads them (client-go's clientcmd loader), for load.ts's loadKubeConfig.
 * client-node's loadFromFile and loadFromDefault differ where it matters (README, "Bun quirks we work around"):
 * its YAML errors quote the file (tokens included), a KUBECONFIG list fails on a missing file or on a name two files
 * share, and `token-file` is read for every user, relative to the working directory. Here client-node only turns
 * each file's entries into its own types; reading, parsing, merging and token files are kubectl's rules.
 */
import { dirname, sep, resolve as resolvePath } from "node:path";
import { KubeConfig, loadYaml } from "@kubernetes/client-node";
import { type CredentialFileError, readCredentialFileSync } from "../sdk/credential-file.ts";
import { type Impersonation, impersonationOf } from "./impersonation.ts";
import { yamlErrorPlace } from "./yaml.ts";

export interface LoadedKubeconfig {
  kc: KubeConfig;
  /**
   * Each user's token file (kubectl's `tokenFile`, or client-node's `token-file`), absolute: from the definition the
   * merge kept, relative to the file that defines it. Read by the caller for the one user it uses, and only for it.
   */
  tokenFiles: Map<string, string>;
  /** What each user impersonates beyond `as`, which client-node drops: from the definition the merge kept. */
  impersonations: Map<string, Impersonation>;
  /**
   * Each cluster's `client.authentication.k8s.io/exec` extension, which client-go tells an exec plugin that asks for
   * its cluster (`spec.cluster.config`) and client-node drops: from the definition the merge kept.
   */
  execExtensions: Map<string, unknown>;
}

/** The name of the cluster extension client-go hands to exec plugins. */
const EXEC_EXTENSION = "client.authentication.k8s.io/exec";

/**
 * Reads kubeconfig files and merges them as kubectl merges `KUBECONFIG=a:b:c`: of clusters, users and contexts
 * (by name) and of `current-context`, the first file that defines one wins, whole, and a later one is ignored. A
 * missing file is an error, unless `list` names the list it comes from: then it is skipped, and only a list none of
 * whose files exists is an error. A file that is not YAML is an error naming the file and where, never its content;
 * one that is no regular file (a FIFO: a read that never ends) is never read (sdk/credential-file.ts).
 */
export function readKubeconfigs(files: string[], list?: string): LoadedKubeconfig {
  const merged = new KubeConfig();
  const tokenFiles = new Map<string, string>();
  const impersonations = new Map<string, Impersonation>();
  const execExtensions = new Map<string, unknown>();
  let found = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readCredentialFileSync("kubeconfig", file).toString("utf8");
    } catch (err) {
      const { code, problem } = err as CredentialFileError;
      if (list !== undefined && code === "ENOENT") continue;
      throw new Error(`cannot load kubeconfig ${file}: ${code === undefined ? `it is ${problem}` : problem}`);
    }
    found++;
    const one = readOne(file, text);
    for (const cluster of one.kc.clusters) {
      if (merged.clusters.some(({ name }) => name === cluster.name)) continue;
      merged.clusters.push(cluster);
      if (one.execExtensions.has(cluster.name)) execExtensions.set(cluster.name, one.execExtensions.get(cluster.name));
    }
    for (const user of one.kc.users) {
      if (merged.users.some(({ name }) => name === user.name)) continue;
      merged.users.push(user);
      const tokenFile = one.tokenFiles.get(user.name);
      if (tokenFile) tokenFiles.set(user.name, tokenFile);
      const impersonation = one.impersonations.get(user.name);
      if (impersonation) impersonations.set(user.name, impersonation);
    }
    for (const context of one.kc.contexts) {
      if (!merged.contexts.some(({ name }) => name === context.name)) merged.contexts.push(context);
    }
    if (!merged.currentContext && one.kc.currentContext) merged.currentContext = one.kc.currentContext;
  }
  if (found === 0 && list !== undefined) {
    throw new Error(`cannot load kubeconfig ${list}: none of its files exists (${files.join(", ")})`);
  }
  return { kc: merged, tokenFiles, impersonations, execExtensions };
}

type Entry = Record<string, unknown>;
const isEntry = (value: unknown): value is Entry =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** One file: its relative paths made absolute against its directory, and its users' token files set apart. */
function readOne(file: string, text: string): LoadedKubeconfig {
  let raw: unknown;
  try {
    raw = loadYaml(text);
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${file}: not valid YAML${yamlErrorPlace(err)}`);
  }
  raw ??= {}; // an empty file, as kubectl reads it: no entries
  if (!isEntry(raw)) throw new Error(`cannot load kubeconfig ${file}: not a kubeconfig (its top level is no mapping)`);
  refuseTwice(file, raw);
  const dir = resolvePath(dirname(file));
  const tokenFiles = new Map<string, string>();
  const impersonations = new Map<string, Impersonation>();
  const users = !Array.isArray(raw.users)
    ? raw.users
    : raw.users.map((entry: unknown) => {
        if (!isEntry(entry) || !isEntry(entry.user)) return entry;
        // client-node would read `token-file` now, for every user, relative to the working directory.
        const { tokenFile, "token-file": dashed, ...user } = entry.user;
        const path = typeof tokenFile === "string" && tokenFile ? tokenFile : dashed;
        if (typeof entry.name === "string") {
          if (typeof path === "string" && path) tokenFiles.set(entry.name, resolvePath(dir, path));
          const impersonation = impersonationOf(user);
          if (impersonation) impersonations.set(entry.name, impersonation);
        }
        // kubectl runs an exec plugin named by a path (not looked up in PATH) relative to the kubeconfig.
        const exec = user.exec;
        if (isEntry(exec) && typeof exec.command === "string" && exec.command.includes(sep)) {
          user.exec = { ...exec, command: resolvePath(dir, exec.command) };
        }
        return { ...entry, user };
      });
  const execExtensions = new Map<string, unknown>();
  for (const entry of Array.isArray(raw.clusters) ? raw.clusters : []) {
    if (!isEntry(entry) || !isEntry(entry.cluster) || typeof entry.name !== "string") continue;
    const extensions: unknown[] = Array.isArray(entry.cluster.extensions) ? entry.cluster.extensions : [];
    const exec = extensions.find((each) => isEntry(each) && each.name === EXEC_EXTENSION) as Entry | undefined;
    if (exec) execExtensions.set(entry.name, exec.extension);
  }
  const kc = new KubeConfig();
  try {
    // JSON is YAML: client-node parses it as it would the file, and turns its entries into its types.
    kc.loadFromString(JSON.stringify({ ...raw, users }));
  } catch (err) {
    // Its own complaints name a field (`clusters[0].cluster.server is missing`), never a value.
    throw new Error(`cannot load kubeconfig ${file}: ${(err as Error).message}`);
  }
  kc.makePathsAbsolute(dir); // certificate-authority, client-certificate, client-key
  return { kc, tokenFiles, impersonations, execExtensions };
}

/**
 * A file names each cluster, user and context once, as client-go requires (`duplicate name "u" in list`, quoting the
 * whole list, tokens and all): client-node would take the first of two silently, which may be the one replaced.
 */
function refuseTwice(file: string, raw: Entry): void {
  for (const [key, what] of [
    ["clusters", "cluster"],
    ["users", "user"],
    ["contexts", "context"],
  ] as const) {
    const names: unknown[] = Array.isArray(raw[key]) ? raw[key].map((entry) => isEntry(entry) && entry.name) : [];
    const twice = names.find((name, at) => typeof name === "string" && names.indexOf(name) !== at);
    if (typeof twice === "string")
      throw new Error(`cannot load kubeconfig ${file}: it defines ${what} "${twice}" twice (kubectl refuses it too)`);
  }
}
