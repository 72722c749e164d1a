/** The test SSE client must read the wire exactly as a browser's EventSource does. */
import { describe, expect, test } from "bun:test";
import { SseParser, type SseEvent } from "./sse-client.ts";

function parse(chunks: string[]): { events: SseEvent[]; comments: string[]; parser: SseParser } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const parser = new SseParser(
    (e) => events.push(e),
    (c) => comments.push(c),
  );
  for (const chunk of chunks) parser.push(chunk);
  return { events, comments, parser };
}

describe("SSE parser (WHATWG event stream interpretation)", () => {
  test("fields, multi-line data, default type, comments", () => {
    const { events, comments } = parse([': hello\n\nid: e:1\nevent: ADDED\ndata: {"a":1}\n\ndata: x\ndata: y\n\n']);
    expect(comments).toEqual(["hello"]);
    expect(events).toEqual([
      { type: "ADDED", data: '{"a":1}', lastEventId: "e:1" },
      { type: "message", data: "x\ny", lastEventId: "e:1" },
    ]);
  });

  test("CR, LF and CRLF line ends, split anywhere, and a leading BOM", () => {
    const wire = "\uFEFFevent: A\r\ndata: 1\r\n\r\nevent: B\rdata: 2\r\revent: C\ndata: 3\n\n";
    const whole = parse([wire]).events;
    const split = parse(wire.split("")).events;
    expect(whole.map((e) => `${e.type}=${e.data}`)).toEqual(["A=1", "B=2", "C=3"]);
    expect(split).toEqual(whole);
  });

  test("an empty id clears the last event id; an event without id keeps it; no data dispatches nothing", () => {
    const { events, parser } = parse([
      "id: e:5\ndata: a\n\n",
      "id:\nevent: RESET\ndata: r\n\n",
      "event: ADDED\ndata: b\n\n",
      "id: e:9\n\n",
    ]);
    expect(events.map((e) => [e.type, e.lastEventId])).toEqual([
      ["message", "e:5"],
      ["RESET", ""],
      ["ADDED", ""],
    ]);
    expect(parser.lastEventId).toBe("e:9");
  });

  test("an id alone (no data) is told to onIdAlone; a blank line or a comment without an id is not", () => {
    const ids: string[] = [];
    const parser = new SseParser(
      () => {},
      () => {},
      (id) => ids.push(id),
    );
    for (const chunk of ["id: e:5\ndata: a\n\n", ": heartbeat\n\n", "\n", "id: e:9\n\n", "id: e:12\n: x\n\n"])
      parser.push(chunk);
    expect(ids).toEqual(["e:9", "e:12"]);
  });

  test(
    "one space after the colon is dropped, a field without colon has an empty value, " + "retry takes digits only",
    () => {
      const { events, parser } = parse(["data:  two spaces\nretry: 1500\nretry: x\ndata\n\n"]);
      expect(events[0]!.data).toBe(" two spaces\n");
      expect(parser.retryMs).toBe(1500);
    },
  );
});
