/**
 * `--check` of the files a NATS sink names. They are read when a connection is opened (so a rotated one is taken),
 * which is after the start: without this, a missing CA or a key where the certificate belongs passed `--check`, and
 * the sink retried a connection that could never succeed.
 */
import { readCredentialFile } from "../../../sdk/credential-file.ts";
import { PEM_CERTIFICATE, PEM_PRIVATE_KEY } from "../../../protocol/pem.ts";
import { isNkeySeed, type NatsSinkConfig } from "./options.ts";

/** A `.creds` file as `nsc` writes it: the user's JWT, then its nkey seed. */
const CREDS = /-----BEGIN NATS USER JWT-----[\s\S]*-----BEGIN USER NKEY SEED-----/;

/**
 * Throws one message naming each file that cannot be read, is no regular file, or does not hold what its key says
 * (never its content).
 */
export async function checkNatsFiles(config: NatsSinkConfig): Promise<void> {
  const files: [key: string, path: string | undefined, holds: (text: string) => boolean, what: string][] = [
    ["tls.caFile", config.tls?.caFile, (text) => PEM_CERTIFICATE.test(text), "PEM certificate"],
    ["tls.certFile", config.tls?.certFile, (text) => PEM_CERTIFICATE.test(text), "PEM certificate"],
    ["tls.keyFile", config.tls?.keyFile, (text) => PEM_PRIVATE_KEY.test(text), "PEM private key"],
    // Trimmed, as a connection reads it (options.ts).
    ["nkeySeedFile", config.nkeySeedFile, (text) => isNkeySeed(text.trim()), "nkey seed (SU…)"],
    ["credsFile", config.credsFile, (text) => CREDS.test(text), "NATS credentials (a user JWT and its seed)"],
  ];
  const problems: string[] = [];
  for (const [key, path, holds, what] of files) {
    if (path === undefined) continue;
    let text: string;
    try {
      text = (await readCredentialFile(key, path)).toString("latin1");
    } catch (error) {
      problems.push((error as Error).message);
      continue;
    }
    if (!holds(text)) problems.push(`${key}: ${path} holds no ${what}`);
  }
  if (problems.length > 0) throw new Error(problems.join("; "));
}
