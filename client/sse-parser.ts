/**
 * The part of the Server-Sent Events format (WHATWG HTML, "Server-sent events") that
 * /v1/watch uses: `event:` and `data:` fields, comments, any line ending, any chunking.
 * Event ids are not kept: the client resumes from the position of its own cache.
 */

export interface SseMessage {
  /** The `event:` field ("message" when absent). */
  event: string;
  data: string;
}

export class SseLineReader {
  private readonly decoder = new TextDecoder();
  private carry = "";
  private event = "";
  private data: string[] = [];

  constructor(private readonly dispatch: (message: SseMessage) => unknown) {}

  push(bytes: Uint8Array): void {
    const text = this.carry + this.decoder.decode(bytes, { stream: true });
    const lines = text.split(/\r\n|\n|\r/);
    // The last piece has no line end yet; a lone CR at the end may be half of a CRLF.
    this.carry = lines.pop() ?? "";
    if (text.endsWith("\r")) this.carry = lines.pop()! + "\r";
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === "") return this.flush();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(line[colon + 1] === " " ? colon + 2 : colon + 1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }

  private flush(): void {
    const message = { event: this.event || "message", data: this.data.join("\n") };
    const hasData = this.data.length > 0;
    this.event = "";
    this.data = [];
    if (hasData) this.dispatch(message);
  }
}
