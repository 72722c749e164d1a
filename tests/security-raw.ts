/**
 * HTTP over a plain socket, for what fetch will not do: a GET with a body, a request from another loopback
 * address or without a Host header, and more connections at once than Bun's fetch holds (256).
 */
import { connect } from "node:net";
import { waitFor } from "../testing/index.ts";

export interface RawExchange {
  /** What the server sent so far. */
  text(): string;
  /** The response's status, once its first line came. */
  status(): Promise<number>;
  /** Whether the connection has closed. */
  ended(): boolean;
  close(): void;
}

/**
 * Sends `head` (the request line and headers, without the blank line), a Host header unless `withoutHost`, and
 * `body` on a new connection. `unread`: the answer is not read (a client on another machine that stops reading), so
 * what the server writes fills the socket's buffers and then the server's; `text()` stays empty.
 */
export async function rawRequest(
  base: string,
  head: string,
  options: { body?: string; localAddress?: string; withoutHost?: boolean; unread?: boolean } = {},
): Promise<RawExchange> {
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port), localAddress: options.localAddress });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let text = "";
  socket.on("data", (chunk) => {
    text += chunk.toString();
  });
  let ended = false;
  socket.on("close", () => (ended = true));
  socket.on("error", () => {});
  if (options.unread) socket.pause();
  const host = options.withoutHost ? "" : `\r\nHost: ${url.host}`;
  socket.write(`${head}${host}\r\n\r\n${options.body ?? ""}`);
  return {
    text: () => text,
    async status() {
      const line = await waitFor(() => /^HTTP\/1\.1 (\d{3})/.exec(text), 10_000, `the response to ${head}`);
      return Number(line[1]);
    },
    ended: () => ended,
    close: () => void socket.destroy(),
  };
}

/** The body of a chunked HTTP/1.1 response (the connection's first), undefined when it did not come whole. */
export function chunkedBody(response: string): string | undefined {
  let at = response.indexOf("\r\n\r\n") + 4;
  let body = "";
  for (;;) {
    const line = response.indexOf("\r\n", at);
    if (line < 0) return undefined;
    const size = Number.parseInt(response.slice(at, line), 16);
    if (Number.isNaN(size) || line + 2 + size > response.length) return undefined;
    if (size === 0) return body;
    body += response.slice(line + 2, line + 2 + size);
    at = line + 2 + size + 2;
  }
}

/**
 * The header fields of the response to `head` (names in lower case), read once its header block has come; the
 * connection is closed then, so a streamed body is left unread.
 */
export async function responseHeaders(base: string, head: string): Promise<Record<string, string>> {
  const exchange = await rawRequest(base, head);
  try {
    const block = () => {
      const text = exchange.text();
      const end = text.indexOf("\r\n\r\n");
      return end < 0 ? undefined : text.slice(0, end);
    };
    const lines = (await waitFor(block, 5000, `the headers of the answer to ${head}`)).split("\r\n").slice(1);
    return Object.fromEntries(
      lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]),
    );
  } finally {
    exchange.close();
  }
}
