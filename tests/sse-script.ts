/**
 * A stand-in for `/v1/watch` that writes scripted bytes, for what a real kubemeta does rarely or never on cue (a gap,
 * a stream it ends, events split anywhere), and the events to script it with.
 */

/** What a connection does once its script is written: stay open and silent, send heartbeats, or end. */
export type AfterScript = "silent" | "end" | { heartbeatMs: number };

export interface ScriptedWatch {
  url: string;
  /** Each request's `Last-Event-ID`, in order (null: none). */
  lastEventIds: (string | null)[];
  /** When each request came (Date.now()), in order. */
  asked: number[];
  /** Heartbeats written so far, on every connection. */
  readonly heartbeats: number;
  stop(): void;
}

/** Writes each connection's chunks (the last script serves any later one), then does what `after` says. */
export function scriptedWatch(scripts: Uint8Array[][], after: AfterScript = "silent"): ScriptedWatch {
  const lastEventIds: (string | null)[] = [];
  const asked: number[] = [];
  let heartbeats = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      lastEventIds.push(request.headers.get("last-event-id"));
      asked.push(Date.now());
      const chunks = scripts[Math.min(lastEventIds.length, scripts.length) - 1]!;
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const chunk of chunks) {
            controller.enqueue(chunk);
            await Bun.sleep(5);
          }
          if (after === "end") controller.close();
          if (typeof after !== "object") return;
          for (; !request.signal.aborted; heartbeats++) {
            controller.enqueue(encode(": heartbeat\n\n"));
            await Bun.sleep(after.heartbeatMs);
          }
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    lastEventIds,
    asked,
    get heartbeats() {
      return heartbeats;
    },
    stop: () => server.stop(true),
  };
}

/** A pod's envelope on `all` in epoch `e1`. */
export function pod(version: number, prev: number, name = `p${version}`) {
  return {
    epoch: "e1",
    version,
    prev,
    stream: "all",
    type: "ADDED",
    kind: "Pod",
    uid: `u-${name}`,
    namespace: "default",
    name,
    node: null,
    resourceVersion: "1",
    time: "t",
    object: {},
  };
}

export const sse = (event: string, data: unknown, id?: string) =>
  `${id === undefined ? "" : `id: ${id}\r\n`}event: ${event}\r\ndata: ${JSON.stringify(data)}\r\n\r\n`;
export const encode = (text: string) => new TextEncoder().encode(text);
export const synced = (version: number) => sse("SYNCED", { epoch: "e1", stream: "all", version }, `e1:${version}`);
