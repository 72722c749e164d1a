/**
 * The streams of the test Hrana server (./hrana-server.ts), kept as sqld keeps them
 * (libsql-server/src/hrana/http/stream.rs): each holds one SQLite connection between
 * requests; a baton names the stream and the sequence number of its next request, signed,
 * so a baton is good once; a stream idle for `idleMs` expires, rolled back, and its baton
 * then says so (STREAM_EXPIRED) rather than being unknown.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { ProtocolError } from "./hrana-proto.ts";
import type { SqlSession } from "./hrana-sqlite.ts";

export interface Stream {
  id: bigint;
  /** The sequence number the next request's baton must carry. */
  seq: bigint;
  session: SqlSession;
  /** SQL texts stored by store_sql, per stream as in Hrana over HTTP. */
  sqls: Map<number, string>;
  /** Set by a close request: the stream ends with its request. */
  closed: boolean;
  timer?: Timer;
}

type Handle =
  | { state: "available"; stream: Stream }
  | { state: "acquired"; stream: Stream }
  | { state: "expired"; until: number };

/** A baton of an expired stream, as opposed to an unknown one: sqld answers HTTP 500 with STREAM_EXPIRED. */
export class StreamExpired extends Error {
  readonly code = "STREAM_EXPIRED";
  constructor() {
    super("The stream has expired due to inactivity");
  }
}

/** Idle connections kept for the next stream: most streams live for one request. */
const POOL_SIZE = 4;
/** How long an expired stream's baton is recognised (sqld: 300 s). */
const EXPIRED_KEPT_MS = 300_000;
const U64 = (1n << 64n) - 1n;

const random64 = () => randomBytes(8).readBigUInt64BE();

export class Streams {
  private readonly key = randomBytes(32);
  private readonly handles = new Map<bigint, Handle>();
  private readonly pool: SqlSession[] = [];

  constructor(
    private readonly connect: () => SqlSession,
    private readonly idleMs: number,
  ) {}

  /** Streams open now (each holding a connection). */
  get count(): number {
    let open = 0;
    for (const handle of this.handles.values()) if (handle.state !== "expired") open++;
    return open;
  }

  /** A new stream for no baton, else the baton's stream, which is the request's until release(). */
  acquire(baton: unknown): Stream {
    if (baton === null || baton === undefined) {
      const stream: Stream = {
        id: random64(),
        seq: random64(),
        session: this.pool.pop() ?? this.connect(),
        sqls: new Map(),
        closed: false,
      };
      this.handles.set(stream.id, { state: "acquired", stream });
      return stream;
    }
    const [id, seq] = this.decode(baton);
    const handle = this.handles.get(id);
    if (!handle) throw new ProtocolError("Received an invalid baton");
    if (handle.state === "expired") throw new StreamExpired();
    if (handle.state === "acquired" || handle.stream.seq !== seq)
      throw new ProtocolError("Received a baton that has already been used");
    const { stream } = handle;
    clearTimeout(stream.timer);
    stream.seq = (stream.seq + 1n) & U64;
    this.handles.set(id, { state: "acquired", stream });
    return stream;
  }

  /** After the request: the stream's next baton, or null when it ended (closed, or dropped after a protocol error). */
  release(stream: Stream, keep: boolean): string | null {
    if (!keep || stream.closed) {
      this.handles.delete(stream.id);
      this.recycle(stream.session);
      return null;
    }
    this.handles.set(stream.id, { state: "available", stream });
    stream.timer = setTimeout(() => this.expire(stream), this.idleMs);
    stream.timer.unref();
    return this.encode(stream.id, stream.seq);
  }

  /** Closes every connection, open transactions rolled back by SQLite. */
  closeAll(): void {
    for (const handle of this.handles.values()) {
      if (handle.state === "expired") continue;
      clearTimeout(handle.stream.timer);
      handle.stream.session.close();
    }
    this.handles.clear();
    for (const session of this.pool.splice(0)) session.close();
  }

  private expire(stream: Stream): void {
    const handle = this.handles.get(stream.id);
    if (handle?.state !== "available" || handle.stream !== stream) return;
    const now = Date.now();
    this.handles.set(stream.id, { state: "expired", until: now + EXPIRED_KEPT_MS });
    this.recycle(stream.session);
    for (const [id, other] of this.handles) if (other.state === "expired" && other.until < now) this.handles.delete(id);
  }

  /** Back to the pool, its transaction rolled back; a connection that cannot roll back is closed instead. */
  private recycle(session: SqlSession): void {
    try {
      session.reset();
      if (this.pool.length < POOL_SIZE) {
        this.pool.push(session);
        return;
      }
    } catch {
      // closed below
    }
    session.close();
  }

  /** sqld's baton: stream id and sequence number (8 bytes each, big endian), then their HMAC-SHA256. */
  private encode(id: bigint, seq: bigint): string {
    const payload = Buffer.alloc(16);
    payload.writeBigUInt64BE(id, 0);
    payload.writeBigUInt64BE(seq, 8);
    const mac = createHmac("sha256", this.key).update(payload).digest();
    return Buffer.concat([payload, mac]).toString("base64").replace(/=+$/, "");
  }

  private decode(baton: unknown): [bigint, bigint] {
    const data = typeof baton === "string" ? Buffer.from(baton, "base64") : Buffer.alloc(0);
    const payload = data.subarray(0, 16);
    const mac = createHmac("sha256", this.key).update(payload).digest();
    if (data.length !== 48 || !timingSafeEqual(mac, data.subarray(16)))
      throw new ProtocolError("Received an invalid baton");
    return [payload.readBigUInt64BE(0), payload.readBigUInt64BE(8)];
  }
}
