/**
 * Who reaches the HTTP listener: `http.address` resolved to the addresses it stands for, and what a listener others
 * reach gives away, warned of at start and by `--check` alike (README, "The `http` section").
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import type { HttpConfig } from "./http-config.ts";

/** Addresses only this machine can reach: 127.0.0.0/8 and ::1, in any spelling, IPv4-mapped ones included. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** A listener on any other address without tokens serves whoever reaches the port. */
export function isLoopback(ip: string): boolean {
  return LOOPBACK.check(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
}

/**
 * The addresses `http.address` stands for: itself, an IP's brackets dropped, or every one a host name resolves to.
 * Throws why a host name does not resolve: Bun.serve fails on such a name with an unrelated ENOTTY.
 */
export async function resolveAddress(address: string): Promise<string[]> {
  const ip = address.replace(/^\[(.*)\]$/, "$1");
  if (isIP(ip) !== 0) return [ip];
  try {
    return (await lookup(address, { all: true })).map((resolved) => resolved.address);
  } catch (error) {
    throw new Error(`cannot resolve http.address ${address}: ${error instanceof Error ? error.message : error}`);
  }
}

const tokensWithoutTls = (http: HttpConfig): boolean => http.tokens.length > 0 && !http.tls;

/** A listener without tokens on an address others reach: what a start logs (with NO_TOKENS_HINT and the address). */
export const NO_TOKENS = "http has no tokens on a non-loopback address: anyone who reaches the port reads the cluster";
export const NO_TOKENS_HINT = "set http.tokens, or http.address: 127.0.0.1";

/** Whether anyone who reaches the listener on `addresses` reads the cluster: no tokens, and not on loopback alone. */
export function openToOthers(http: HttpConfig, addresses: string[]): boolean {
  return http.tokens.length === 0 && !addresses.every(isLoopback);
}

/**
 * The bearer tokens clients send to a listener others reach without `http.tls`: over the network in clear, as a
 * credential kubemeta sends itself would be (protocol/clear-text.ts). Warned of, not refused: TLS may be a proxy's or
 * a mesh's in front, which kubemeta cannot see.
 */
export function listenerWarnings(http: HttpConfig, addresses: string[]): string[] {
  if (!tokensWithoutTls(http) || addresses.every(isLoopback)) return [];
  return [
    `http.tokens: clients send their token to ${http.address} over http://, unencrypted: anyone on the network ` +
      "path reads it; set http.tls, or put a TLS-terminating proxy or mesh in front",
  ];
}

/**
 * `--check`'s: what a start warns of the listener, for the addresses it would resolve (none for one that does not):
 * no tokens where others reach it (as one line: the start's, its address and hint), tokens sent there in clear. A name
 * is looked up only when a warning could follow: no other check waits on this machine's resolver.
 */
export async function checkListenerWarnings(http: HttpConfig): Promise<string[]> {
  if (http.tokens.length > 0 && http.tls) return [];
  const addresses = await resolveAddress(http.address).catch(() => undefined);
  if (!addresses) return [];
  const open = openToOthers(http, addresses) ? [`${NO_TOKENS} (${http.address}); ${NO_TOKENS_HINT}`] : [];
  return [...open, ...listenerWarnings(http, addresses)];
}
