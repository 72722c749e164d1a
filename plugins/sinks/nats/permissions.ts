/**
 * What the sink says when the NATS server refuses it a permission. The server names the operation and the subject,
 * never the user, and says nothing of where the permission is granted: an operator reading the line needs both.
 */
import { nkeys, type NodeConnectionOptions } from "@nats-io/transport-node";

/** The README section that lists the permissions the sink's NATS user needs, named in each refusal's line. */
export const PERMISSIONS_README = "README: NATS, Permissions";

/** A `.creds` file's JWT, as `nsc` writes it: the line after its BEGIN line (the client reads it so too). */
const CREDS_JWT = /-{3,}BEGIN NATS USER JWT-{3,}\r?\n\s*([\w\-.=]+)/;

/** What a connection authenticates with, its secrets read: the seed of `nkeySeed(File)`, `credsFile`'s bytes. */
export interface NatsKeys {
  seed?: string;
  creds?: Uint8Array;
}

/**
 * The NATS user a connection authenticates as, as the server's configuration names it: a user's name (the sink's, or
 * its URLs'), an nkey's public key (U…, of a seed), a creds file's JWT's user (`name (U…)`, read, not verified: the
 * server checks it), `a token` (never the token itself); undefined for a connection without credentials, or a key
 * that cannot be read (the server refuses it anyway).
 */
export function natsUser(client: NodeConnectionOptions, keys: NatsKeys): string | undefined {
  if (keys.creds) return jwtUser(keys.creds);
  if (keys.seed) return publicKeyOf(keys.seed);
  if (client.user !== undefined) return client.user;
  return client.token === undefined ? undefined : "a token";
}

function publicKeyOf(seed: string): string | undefined {
  try {
    return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    return undefined;
  }
}

/** The JWT's subject (the user's public key), after its `name` when it has one, as `nsc` shows users. */
function jwtUser(creds: Uint8Array): string | undefined {
  const payload = CREDS_JWT.exec(new TextDecoder().decode(creds))?.[1]?.split(".")[1];
  if (payload === undefined) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof claims !== "object" || claims === null) return undefined;
  const { sub, name } = claims as { sub?: unknown; name?: unknown };
  if (typeof sub !== "string") return undefined;
  return typeof name === "string" && name !== "" && name !== sub ? `${name} (${sub})` : sub;
}
