/**
 * Where a credential would cross a network unencrypted: kubemeta warns of a config that sends one so (README, "The
 * `http` section"), as it warns of a listener anyone can read.
 */

/** Go's httpproxy's exceptions: `localhost`, and an IP address in 127.0.0.0/8 or `::1` (IPv4-mapped too). */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1");
  return host === "localhost" || /^127(\.\d+){3}$/.test(host) || host === "::1" || /^::ffff:7f[0-9a-f]{2}:/.test(host);
}

/**
 * The host a request to `url` reaches unencrypted, over the network: `http://` or `ws://` (and any scheme in
 * `clearSchemes`) to a host other than this machine; undefined otherwise, or for what is no URL.
 */
export function clearTextHost(url: string, clearSchemes: readonly string[] = []): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const { protocol, hostname, host } = new URL(url);
  const clear = ["http:", "ws:", ...clearSchemes].includes(protocol.toLowerCase());
  return clear && !isLoopback(hostname) ? host : undefined;
}

/**
 * What of a URL may carry a credential: its user and password (sent as Basic credentials), and query keys whose names
 * say so (`?authToken=`, `?api_key=`); each said as its place, never its value.
 */
export function urlCredentialPlaces(url: string): string[] {
  if (!URL.canParse(url)) return [];
  const { username, password, searchParams } = new URL(url);
  const keys = [...new Set(searchParams.keys())].filter(namesCredential);
  return [...(username || password ? ["the url's user and password"] : []), ...keys.map((key) => `the url's ?${key}=`)];
}

const CREDENTIAL_WORDS =
  /auth|token|secret|passw|cookie|session|credential|signature|apikey|(?:^|[-_.])key(?:$|[-_.])/i;
/** "Key" begun by a capital in a camelCase name: case tells the word, not separators. */
const CAMEL_KEY = /[a-z\d]Key(?![a-z])/;

/**
 * Whether a header's or a query key's name says it carries a credential: "key" as a word of it (X-Api-Key, access_key,
 * AccessKey, accessKey), not inside another (X-Monkey).
 */
export const namesCredential = (name: string): boolean => CREDENTIAL_WORDS.test(name) || CAMEL_KEY.test(name);
