/**
 * How a failed request is said in the log, /readyz and a sink's failure detail, by the kubernetes source, the Lease
 * election and the webhook alike, and to the client library's onError (so `tail`): what Bun's fetch says, without
 * what is for its caller alone.
 */

/**
 * Bun's fetch names the whole URL in some of its errors (ERR_TLS_CERT_ALTNAME_INVALID fetching "https://…/api/v1/pods?
 * watch=1&timeoutSeconds=287…". For more information, pass verbose: true…): each resource's path and query differ,
 * so resources failing alike would each get a part of their own in /readyz. The server's origin is what tells an
 * operator something; the hint, with a URL or without one, is for whoever calls fetch.
 */
export function withoutUrl(message: string): string {
  return message
    .replace(
      / fetching "([^"]*)"\.?(?: For more information, pass `verbose: true` in the second argument to fetch\(\))?/,
      (_all, url: string) => ` fetching ${URL.canParse(url) ? new URL(url).origin : url}`,
    )
    .replace(VERBOSE_HINT, "")
    .replace(NO_DESCRIPTOR, (_all, code: string) => `${code}: ${NO_DESCRIPTOR_SAID[code]}`);
}

/**
 * Bun's fetch that cannot open a socket for want of a descriptor blames the URL: the cause is the process's open-file
 * limit (EMFILE) or the system's (ENFILE), and the same URL works once descriptors are free.
 */
const NO_DESCRIPTOR = /^(EMFILE|ENFILE): Was there a typo in the url or port\?$/;
const NO_DESCRIPTOR_SAID: Record<string, string> = {
  EMFILE: "too many open files: the process's open-file limit is reached",
  ENFILE: "too many open files in the system",
};

/** The hint alone, where Bun names no URL (ECONNRESET: The socket connection was closed unexpectedly. For more…). */
const VERBOSE_HINT = / For more information, pass `verbose: true` in the second argument to fetch\(\)\.?$/;

/**
 * A failed request as /readyz and the log say it: its message without the URL Bun's fetch puts in it (withoutUrl),
 * after its code where the message does not say it (Bun's `self signed certificate` is DEPTH_ZERO_SELF_SIGNED_CERT).
 */
export function errorText(err: unknown): string {
  const { code, message }: { code?: unknown; message?: unknown } = typeof err === "object" && err !== null ? err : {};
  const said = typeof message === "string" && message !== "" ? withoutUrl(message) : undefined;
  if (typeof code === "string" && !said?.includes(code)) return said ? `${code}: ${said}` : code;
  return said ?? String(err);
}
