/**
 * A kubeconfig user's token file (`tokenFile`, `token-file`; in a cluster the service account's, which the kubelet
 * rotates: a bound token expires, in an hour by default, and is replaced at 80 % of its life), read at load as kubectl
 * reads it, and again at a request once it has changed, as client-go's cached file token source reads it again (once
 * a minute there): a rotated token is sent from the next request on, before the one it replaced is refused, rather
 * than after a 401 (which still reloads everything, as before).
 */
import { stat } from "node:fs/promises";
import type { KubeConfig } from "@kubernetes/client-node";
import { readCredentialFile, readCredentialFileSync } from "../sdk/credential-file.ts";

/** How long a token read is sent without reading its file again while it looks unchanged: client-go's period. */
const REREAD_MS = 60_000;

interface TokenFile {
  path: string;
  /** What the file's last read gave, if it gave a token. */
  token?: string;
  /** The file as stat saw it before that read: another (a rename over it) or a write reads it again. */
  seen?: string;
  readAt: number;
}

/** The token file of each KubeConfig loadKubeConfig returned: a reload returns another, read afresh. */
const files = new WeakMap<KubeConfig, TokenFile>();

/**
 * The current user's token file (`tokenFile`, kubectl's key, or `token-file`), read here rather than by client-node
 * (which knows only `token-file`, reads it for every user and relative to the working directory): only the user the
 * context names, as client-go reads it (other users may name files long gone), the one the merge kept, relative to
 * the file that defines it, and trimmed; read again at a request once changed (withTokenRead), and on every reload.
 * A user with a `token` too sends the file's as client-go does (the file's last read wins over the inline token,
 * which is only the fallback while the file cannot be read): the inline one is often a snapshot the file replaced.
 */
export function readTokenFile(kc: KubeConfig, tokenFiles: Map<string, string>): void {
  const current = kc.getCurrentUser();
  const file = current && tokenFiles.get(current.name);
  if (!current || !file) return;
  files.set(kc, { path: file, readAt: 0 });
  let token: string;
  try {
    token = readCredentialFileSync("its token file", file).toString("utf8").trim();
  } catch (error) {
    if (current.token) return;
    throw error;
  }
  // client-go's file token source refuses an empty file, and its request then keeps the inline token.
  if (!token && current.token) return;
  kc.users[kc.users.indexOf(current)] = { ...current, token };
}

/**
 * `kc` with its user's token as its token file holds it now: read again when stat sees another file (a rename over
 * it, as the kubelet swaps a projected volume's `..data`) or a write, or a minute after the last read. While it cannot
 * be read or is empty, the last token read (else the one the load found) is sent, as client-go's cachingTokenSource
 * keeps it. A view on `kc` (its prototype), as tls-files.ts's withFilesRead. `kc` itself, in the same turn, for a user
 * with no token file: a request joins an exec plugin's run in the turn it is made (exec-runs.ts), before a transport
 * closed meanwhile could kill the run it would have joined.
 */
export function withTokenRead(kc: KubeConfig): KubeConfig | Promise<KubeConfig> {
  const file = files.get(kc);
  return file ? readAgain(kc, file) : kc;
}

async function readAgain(kc: KubeConfig, file: TokenFile): Promise<KubeConfig> {
  const user = kc.getCurrentUser();
  if (!user) return kc;
  try {
    const info = await stat(file.path);
    const seen = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    if (seen !== file.seen || Date.now() - file.readAt >= REREAD_MS) {
      const token = (await readCredentialFile("its token file", file.path)).toString("utf8").trim();
      if (token) Object.assign(file, { token, seen, readAt: Date.now() });
    }
  } catch {
    // Gone for a moment (a rotation), or unusable: the token sent till now still is; a 401 reloads, and says why.
  }
  if (file.token === undefined || file.token === user.token) return kc;
  const view = Object.create(kc) as KubeConfig;
  view.users = kc.users.map((entry) => (entry === user ? { ...user, token: file.token } : entry));
  return view;
}
