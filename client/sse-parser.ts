/**
 * The Server-Sent Events format: the WHATWG "event stream interpretation" algorithm
 * (html.spec.whatwg.org, "Server-sent events"): `event`, `data`, `id` and `retry` fields,
 * comments, a leading BOM, any line ending, any chunking. The client library reads
 * /v1/watch with it, and the tests check the server against it.
 */

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  type: string;
  data: string;
  /** The connection's last event id when this event was dispatched (what a reconnect sends). */
  lastEventId: string;
}

/** The parsing half: feed it decoded text in any chunking. */
export class SseParser {
  lastEventId = "";
  retryMs: number | undefined;
  private pending = "";
  private sawFirstChunk = false;
  private data = "";
  private eventType = "";
  private idBuffer = "";
  /** An `id` field came since the last dispatch. */
  private sawId = false;
  private readonly onEvent: (event: SseEvent) => void;
  private readonly onComment: (text: string) => void;
  private readonly onIdAlone: (id: string) => void;

  /**
   * `onIdAlone`: a message with an `id` and no data, which dispatches no event but moves the last event id (kubemeta
   * sends one on a filtered stream whose latest updates were all filtered out).
   */
  constructor(
    onEvent: (event: SseEvent) => void,
    onComment: (text: string) => void = () => {},
    onIdAlone: (id: string) => void = () => {},
  ) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onIdAlone = onIdAlone;
  }

  push(chunk: string): void {
    let text = this.pending + chunk;
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      if (text.startsWith("\uFEFF")) text = text.slice(1);
    }
    const lineBreak = /\r\n|\r|\n/g;
    let start = 0;
    for (let found = lineBreak.exec(text); found; found = lineBreak.exec(text)) {
      // A CR at the very end may be the first half of CRLF: wait for the next chunk.
      if (found[0] === "\r" && found.index === text.length - 1) break;
      this.line(text.slice(start, found.index));
      start = lineBreak.lastIndex;
    }
    this.pending = text.slice(start);
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) {
      this.onComment(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventType = value;
    else if (field === "data") this.data += `${value}\n`;
    else if (field === "id" && !value.includes("\0")) {
      this.idBuffer = value;
      this.sawId = true;
    } else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    const sawId = this.sawId;
    this.sawId = false;
    if (this.data === "") {
      this.eventType = "";
      if (sawId) this.onIdAlone(this.lastEventId);
      return;
    }
    const event = { type: this.eventType || "message", data: this.data.slice(0, -1), lastEventId: this.lastEventId };
    this.data = "";
    this.eventType = "";
    this.onEvent(event);
  }
}
