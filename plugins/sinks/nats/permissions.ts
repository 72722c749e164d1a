/**
 * What the sink says when the NATS server refuses it a permission. The server names the operation and the subject,
 * never the user, and says nothing of where the permission is granted: an operator reading the line needs both.
 */
import { natsServerOptions } from "../../../protocol/subjects.ts";
import { type NatsSinkConfig, ownCredentials } from "./options.ts";

/** The README section that lists the permissions the sink's NATS user needs, named in each refusal's line. */
export const PERMISSIONS_README = "README: NATS, Permissions";

/** The user the sink connects as, when it has one by name (a user and password, its own or its URLs'). */
export function natsUser(config: NatsSinkConfig): string | undefined {
  return config.user ?? natsServerOptions(config.servers, ownCredentials(config) !== undefined).user;
}
