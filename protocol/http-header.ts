/**
 * HTTP header fields as fetch sends them (RFC 9110): the webhook sink's configured headers and the SSE client's
 * `headers` follow one rule, so that what one takes, fetch does not throw on at every request.
 */

/** A field name: a token. */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value without control characters (no CR or LF to split the request), in Latin-1 as a ByteString is. */
export const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The first name given twice in `headers`, in any case (fetch joins their values into one: "a, b"). */
export function headerNamedTwice(headers: Record<string, string>): string | undefined {
  const seen = new Set<string>();
  for (const name of Object.keys(headers)) {
    const key = name.toLowerCase();
    if (seen.has(key)) return key;
    seen.add(key);
  }
  return undefined;
}
