/**
 * A consumer of kubemeta over NATS, as the README tells one to be written: subscribe to a
 * stream's subject, apply envelopes by the gap rule, ask `<prefix>.replay` when `prev`
 * reveals a gap (or to start), take resets. Tests compare what it ends up with to the store.
 */
import { createInbox, type NatsConnection } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import type { ReplayChunk } from "../protocol/replay.ts";

/**
 * Sends one replay request and collects its chunks up to the one marked last. While
 * kubemeta is not connected, the server answers "no responders" (an empty message with
 * status 503): asked again, as the README tells a consumer to, for up to `noRespondersMs`
 * (a sink reconnecting after a NATS restart on a loaded machine takes a while). A request
 * can also be lost on a connection that is going down, which silence for `silenceMs`
 * reveals: asked again, `attempts` times in all, as is a reply with a hole in its `seq`.
 */
export async function replay(
  nc: NatsConnection,
  subject: string,
  request: unknown,
  silenceMs = 1_000,
  attempts = 5,
  noRespondersMs = 15_000,
): Promise<ReplayChunk[]> {
  const respondersBy = Date.now() + noRespondersMs;
  for (let attempt = 1; ; ) {
    const inbox = createInbox();
    const sub = nc.subscribe(inbox);
    nc.publish(subject, typeof request === "string" ? request : JSON.stringify(request), { reply: inbox });
    const chunks: ReplayChunk[] = [];
    const iterator = sub[Symbol.asyncIterator]();
    let noResponders = false;
    try {
      for (;;) {
        let timer: Timer | undefined;
        const silence = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, silenceMs)));
        const next = await Promise.race([iterator.next(), silence]).finally(() => clearTimeout(timer));
        if (!next || next.done) break;
        if (next.value.headers?.code === 503) {
          noResponders = true;
          break;
        }
        const chunk = next.value.json<ReplayChunk>();
        // A hole in `seq` is a chunk lost (a slow consumer's server drops it): the reply is not whole, ask again.
        if (chunk.seq !== chunks.length) break;
        chunks.push(chunk);
        if (chunk.last) return chunks;
      }
    } finally {
      sub.unsubscribe();
    }
    if (noResponders && Date.now() < respondersBy) {
      await Bun.sleep(silenceMs / 10);
      continue;
    }
    if (noResponders) throw new Error(`no responders on ${subject} for ${noRespondersMs} ms`);
    if (attempt++ >= attempts) throw new Error(`no complete reply to ${subject} after ${attempts} attempts`);
  }
}

export interface FollowerOptions {
  nc: NatsConnection;
  prefix: string;
  /** Stream name, e.g. `node/ip-10-0-1-23.eu-west-1.compute.internal`. */
  stream: string;
  /** Its subject, e.g. `<prefix>.node.<token>`. */
  subject: string;
}

/** The current objects of one stream, kept by envelopes and replays. */
export class Follower {
  /** uid → the last envelope applied for it. */
  readonly objects = new Map<string, Envelope>();
  epoch: string | undefined;
  position = 0;
  /** Replays asked because a `prev` revealed a gap (not counting the initial sync). */
  gaps = 0;
  resets = 0;
  /** Versions applied as updates (live or replayed, not reset state), in order: a whole chain has no hole. */
  readonly chain: number[] = [];
  /** Every envelope received live, in order. */
  readonly received: Envelope[] = [];
  private readonly pending: Envelope[] = [];
  private syncing: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Pending messages wait while a replay is queued: it may make them duplicates. */
  private replaysQueued = 0;

  constructor(private options: FollowerOptions) {}

  /** Subscribes, then syncs: a reset, or a catch-up from the position it holds (see resume). */
  async start(catchUp = false): Promise<void> {
    const { nc } = this.options;
    nc.subscribe(this.options.subject, {
      callback: (error, msg) => {
        if (error) return;
        const envelope = msg.json<Envelope>();
        this.received.push(envelope);
        this.pending.push(envelope);
        this.drain();
      },
    });
    void this.catchUpOnReconnect(nc);
    // The request follows the SUB on the same connection: the server has the subscription first.
    await this.sync(catchUp ? "catch-up" : "reset");
  }

  /** `prev` reveals a gap only when a later message comes: after a reconnect, ask at once. */
  private async catchUpOnReconnect(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "reconnect" && this.options.nc === nc) void this.sync("catch-up");
    }
  }

  /** Comes back (on another connection, say) and asks for what it missed since its position. */
  resume(nc: NatsConnection): Promise<void> {
    this.options = { ...this.options, nc };
    return this.start(true);
  }

  /** Resolves once every message received so far is handled; throws what a replay threw. */
  async settled(): Promise<void> {
    await this.syncing;
    if (this.failure) throw this.failure;
  }

  private sync(mode: "reset" | "catch-up", to?: number): Promise<void> {
    this.replaysQueued++;
    this.syncing = this.syncing
      .then(() => this.replayInto(mode, to))
      .catch((error: unknown) => {
        this.failure = error;
      });
    return this.syncing;
  }

  /** The position is read when the replay runs, not when it was asked for: what came meanwhile is not asked again. */
  private async replayInto(mode: "reset" | "catch-up", to?: number): Promise<void> {
    this.replaysQueued--;
    if (mode === "catch-up" && to !== undefined && to <= this.position) return this.handlePending();
    const from = mode === "catch-up" && this.epoch ? `${this.epoch}:${this.position}` : undefined;
    const chunks = await replay(this.options.nc, `${this.options.prefix}.replay`, {
      stream: this.options.stream,
      from,
      to,
    });
    const first = chunks[0]!;
    if (first.error) throw new Error(`replay error: ${first.error}`);
    chunks.forEach((chunk, i) => {
      if (chunk.seq !== i) throw new Error(`chunk ${i} has seq ${chunk.seq}`);
    });
    if (first.reset) {
      this.resets++;
      this.objects.clear();
      this.position = 0;
    }
    this.epoch = first.epoch;
    for (const chunk of chunks) {
      for (const envelope of chunk.updates) {
        if (first.reset) this.apply(envelope, false);
        else if (envelope.version > this.position) this.apply(envelope, true);
      }
    }
    this.position = Math.max(this.position, chunks.at(-1)!.through!);
    this.handlePending();
  }

  private drain(): void {
    this.syncing = this.syncing.then(() => this.handlePending());
  }

  private handlePending(): void {
    while (this.pending.length > 0 && this.replaysQueued === 0) {
      const envelope = this.pending[0]!;
      if (envelope.epoch !== this.epoch) {
        this.pending.length = 0;
        void this.sync("reset");
        return;
      }
      if (envelope.version <= this.position) {
        this.pending.shift();
        continue;
      }
      if (envelope.prev > this.position) {
        this.gaps++;
        void this.sync("catch-up", envelope.prev);
        return;
      }
      this.pending.shift();
      this.apply(envelope, true);
      this.position = envelope.version;
    }
  }

  private apply(envelope: Envelope, inChain: boolean): void {
    if (inChain) this.chain.push(envelope.version);
    if (envelope.type === "DELETED") this.objects.delete(envelope.uid);
    else this.objects.set(envelope.uid, envelope);
  }

  /** uid → version, to compare with a snapshot of the store. */
  state(): Map<string, number> {
    return new Map([...this.objects].map(([uid, e]) => [uid, e.version]));
  }
}
