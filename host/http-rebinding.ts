/**
 * DNS rebinding: any web page, its site's name made to resolve to 127.0.0.1, is of the same origin as a loopback
 * listener, and reads what it serves without a token, though only this machine reaches the port. Its requests name
 * that site in their Host; this machine's own clients name an address, `localhost` (or a name under it, which
 * browsers resolve to loopback alone: RFC 6761 §6.3) or the listener's `http.address`.
 */
import type { MiddlewareHandler } from "hono";
import { isIP } from "node:net";

export function refuseForeignHosts(address: string): MiddlewareHandler {
  const own = address.toLowerCase().replace(/\.$/, "");
  return async (c, next) => {
    const host = new URL(c.req.url).hostname.toLowerCase().replace(/\.$/, "");
    const bare = host.replace(/^\[(.*)\]$/, "$1");
    if (isIP(bare) !== 0 || host === "localhost" || host.endsWith(".localhost") || host === own) return next();
    return c.json(
      {
        error:
          `Host ${host} is not this listener's: without http.tokens, a loopback listener answers requests for ` +
          "an address, localhost or http.address alone (a web page of another site cannot read it)",
      },
      403,
    );
  };
}
