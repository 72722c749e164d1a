/**
 * The NATS subjects of one cluster (DESIGN.md, "NATS"): `<prefix>.all`, `<prefix>.shared`,
 * `<prefix>.node.<token>` carry envelopes; `<prefix>.replay` answers replay requests. And what
 * names a NATS server for the sink and `kubemeta tail`.
 */
import { encodeNodeToken, isNodeName } from "./node-token.ts";
import { ALL, NODE_PREFIX, SHARED } from "./streams.ts";

/** Dot-separated tokens of letters, digits, `_` and `-`: no wildcards, no empty token. */
export const PREFIX_PATTERN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/** Where every NATS client takes its replies unless told otherwise: `_INBOX.<id>`. */
export const DEFAULT_INBOX_PREFIX = "_INBOX";

/**
 * Why a prefix cannot be kubemeta's, for one whose subjects are NATS clients' inboxes; undefined otherwise. No reply
 * goes under kubemeta's own prefix (a requester's inbox there is refused), so under `_INBOX` no replay is answered.
 */
export function inboxPrefixProblem(prefix: string): string | undefined {
  if (prefix !== DEFAULT_INBOX_PREFIX) return undefined;
  return `${prefix} is where NATS clients take their replies (_INBOX.<id>), and kubemeta sends none under its prefix`;
}

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

/** A URL's scheme and its `//` (`nats://`, `tls://`); a server written without one is `nats://`. */
const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * True for what the NATS client connects to: `nats://` or `tls://` (or no scheme), a host, a numeric port if any,
 * and no path. The client itself takes anything and retries a bad URL for ever, never saying why.
 */
export function isNatsServer(server: string): boolean {
  const withScheme = URL_SCHEME.test(server) ? server : `nats://${server}`;
  if (!URL.canParse(withScheme)) return false;
  const url = new URL(withScheme);
  return (
    (url.protocol === "nats:" || url.protocol === "tls:") &&
    url.hostname !== "" &&
    (url.pathname === "" || url.pathname === "/")
  );
}

/**
 * A server URL's parts around its credentials; undefined when it has none. Everything before the last `@` is
 * credentials, so a password holding an unescaped `/` or `@` is taken whole; anything not a URL is read so too.
 */
function userinfoOf(server: string): { scheme: string; userinfo: string; host: string } | undefined {
  const at = server.lastIndexOf("@");
  if (at < 0) return undefined;
  const scheme = URL_SCHEME.exec(server)?.[0] ?? "";
  return { scheme, userinfo: server.slice(scheme.length, Math.max(at, scheme.length)), host: server.slice(at + 1) };
}

/**
 * A server URL as kubemeta writes it (logs, errors, messages), a NATS server's, the API server's or a store's:
 * credentials in it hidden, `nats://user:***@host` (`nats://***@host` for a token), and so is each value of its query
 * (`?authToken=***`) and its fragment (`#***`), where a token may be too, whatever the rest is.
 */
export function redactServer(server: string): string {
  const parts = userinfoOf(server);
  if (!parts) return withoutQueryValues(server);
  const colon = parts.userinfo.indexOf(":");
  const user = parts.userinfo.slice(0, Math.max(colon, 0));
  // A user name past an `@` is no user's: several URLs in one (`nats://<token>@a:4222,nats://<token>@b:4222`).
  const userinfo = colon >= 0 && !/[@,\s]/.test(user) ? `${user}:***` : "***";
  return `${parts.scheme}${userinfo}@${withoutQueryValues(parts.host)}`;
}

/** `text` with each value of its query (what follows a `?`) and its fragment (after a `#`) as `***`. */
function withoutQueryValues(text: string): string {
  const [beforeFragment = "", ...fragment] = text.split("#");
  const [path = "", ...query] = beforeFragment.split("?");
  const pairs = query.join("?").split("&");
  // A key without a value may be a token itself (`?<token>`): hidden whole.
  const hidden = pairs.map((pair) => (pair.includes("=") ? `${pair.slice(0, pair.indexOf("="))}=***` : "***"));
  return `${path}${query.length > 0 ? `?${hidden.join("&")}` : ""}${fragment.length > 0 ? "#***" : ""}`;
}

/** True when a server URL carries credentials (`user:password@`, `token@`). */
export function hasCredentials(server: string): boolean {
  return userinfoOf(server) !== undefined;
}

/** A server URL without its credentials. */
function withoutCredentials(server: string): string {
  const parts = userinfoOf(server);
  return parts ? `${parts.scheme}${parts.host}` : server;
}

/**
 * The NATS client's `servers` and credentials for servers as a user writes them: the URLs without their credentials
 * (the client reads none from a URL), and those credentials unless the caller has its own (`ownCredentials`); TLS
 * when one is written `tls://`.
 */
export function natsServerOptions(
  servers: readonly string[],
  ownCredentials: boolean,
): { servers: string[]; user?: string; pass?: string; token?: string; tls?: Record<string, never> } {
  // The client reads no scheme: without `tls`, it logs in over plain TCP to a `tls://` server that offers no TLS.
  // One `tls://` makes the whole connection TLS, as in nats.go: the client fails over between the servers.
  const tls = servers.some((server) => /^tls:\/\//i.test(server)) ? { tls: {} } : {};
  return { servers: servers.map(withoutCredentials), ...(ownCredentials ? {} : urlAuth(servers)), ...tls };
}

/** What a URL's credentials stand for, as other NATS clients read them: `user:password@`, or a lone `token@`. */
export type UrlAuth = { user: string; pass: string } | { token: string };

/** The distinct credentials the servers' URLs carry, as written. */
function userinfos(servers: readonly string[]): Set<string> {
  return new Set(servers.map((server) => userinfoOf(server)?.userinfo).filter((info) => info !== undefined));
}

/**
 * True unless two of the servers' URLs carry different credentials: one connection fails over between them, so the
 * credentials of one URL are those of all.
 */
export function credentialsAgree(servers: readonly string[]): boolean {
  return userinfos(servers).size <= 1;
}

/**
 * The credentials the servers' URLs carry, percent-decoded, for every server; undefined when none does. Throws a
 * RangeError when two differ (credentialsAgree).
 */
export function urlAuth(servers: readonly string[]): UrlAuth | undefined {
  const given = userinfos(servers);
  if (given.size > 1) throw new RangeError("the servers' URLs carry different credentials");
  const [userinfo] = given;
  if (userinfo === undefined) return undefined;
  const colon = userinfo.indexOf(":");
  if (colon < 0) return { token: decoded(userinfo) };
  return { user: decoded(userinfo.slice(0, colon)), pass: decoded(userinfo.slice(colon + 1)) };
}

/** Percent-decoded, as a URL's userinfo is written; as it is when it is not valid percent-encoding. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
