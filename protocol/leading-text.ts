/**
 * The start of an HTTP body, as far as a message quotes it, the rest cancelled: an answer whose body never ends (a URL
 * that streams, a download, a JSON watch) neither fills memory nor holds the reader until a timeout. Used where an
 * error answer is quoted (the client library's refused connections, the webhook sink's refusals, the API server's
 * failed requests) and where an answer is read to a bound (the ha Lease).
 */

/** The text of the first `maxBytes` of `body` (a body cut short: what came of it); the rest is never read. */
export async function leadingText(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<string> {
  if (!body) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (let read = 0; read < maxBytes; ) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, maxBytes - read);
      read += part.length;
      text += decoder.decode(part, { stream: true });
    }
  } catch {
    // A body cut short (a timeout, a stop, a connection reset): what came is what it said.
  }
  reader.cancel().catch(() => {});
  return text + decoder.decode();
}
