/**
 * The NATS subjects of one cluster (DESIGN.md, "NATS"): `<prefix>.all`, `<prefix>.shared`,
 * `<prefix>.node.<token>` carry envelopes; `<prefix>.replay` answers replay requests. And what
 * names a NATS server for the sink and `kubemeta tail`.
 */
import { encodeNodeToken, isNodeName } from "./node-token.ts";
import { ALL, NODE_PREFIX, SHARED } from "./streams.ts";

/** Dot-separated tokens of letters, digits, `_` and `-`: no wildcards, no empty token. */
export const PREFIX_PATTERN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/**
 * `kubemeta.<cluster>`, where every character of the cluster name other than a letter,
 * digit, `_` or `-` becomes `_` (cluster `prod.eu-west-1` → `kubemeta.prod_eu-west-1`),
 * so that the cluster stays one token whatever its name.
 */
export function defaultPrefix(cluster: string): string {
  // Per character (`u`): a character outside the BMP is one `_`, as in any language that reads the rule.
  return `kubemeta.${cluster.replace(/[^A-Za-z0-9_-]/gu, "_")}`;
}

export interface Subjects {
  readonly all: string;
  readonly shared: string;
  readonly replay: string;
  /** The subject of a stream; undefined for a node stream whose name is not a legal node name. */
  of(stream: string): string | undefined;
}

export function subjectsFor(prefix: string): Subjects {
  const all = `${prefix}.${ALL}`;
  const shared = `${prefix}.${SHARED}`;
  return {
    all,
    shared,
    replay: `${prefix}.replay`,
    of(stream) {
      if (stream === ALL) return all;
      if (stream === SHARED) return shared;
      const node = stream.startsWith(NODE_PREFIX) ? stream.slice(NODE_PREFIX.length) : "";
      return isNodeName(node) ? `${prefix}.node.${encodeNodeToken(node)}` : undefined;
    },
  };
}

/** How a NATS server must be written, wherever it is given. */
export const NATS_SERVER_RULE = "nats://host:port or tls://host:port (the scheme may be left out, the port too)";

/**
 * True for what the NATS client connects to: `nats://` or `tls://` (or no scheme), a host, a numeric port if any,
 * and no path. The client itself takes anything and retries a bad URL for ever, never saying why.
 */
export function isNatsServer(server: string): boolean {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(server) ? server : `nats://${server}`;
  if (!URL.canParse(withScheme)) return false;
  const url = new URL(withScheme);
  return (
    (url.protocol === "nats:" || url.protocol === "tls:") &&
    url.hostname !== "" &&
    (url.pathname === "" || url.pathname === "/")
  );
}

/**
 * A NATS server URL as kubemeta writes it (logs, errors, messages): credentials in it hidden, `nats://user:***@host`
 * (`nats://***@host` for a token), whatever the rest is. Everything before the last `@` is credentials, so a password
 * holding an unescaped `/` or `@` stays hidden too; anything not a URL passes through this as well.
 */
export function redactServer(server: string): string {
  const at = server.lastIndexOf("@");
  if (at < 0) return server;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(server)?.[0] ?? "";
  const userinfo = server.slice(scheme.length, Math.max(at, scheme.length));
  const colon = userinfo.indexOf(":");
  return `${scheme}${colon >= 0 ? `${userinfo.slice(0, colon)}:***` : "***"}${server.slice(at)}`;
}

/** True when a server URL carries credentials (`user:password@`, `token@`), which the NATS client does not use. */
export function hasCredentials(server: string): boolean {
  return redactServer(server) !== server;
}
