/**
 * The writer of one replay's reply: each chunk published to every reply subject (requesters answered together get the
 * same chunks), flushed as it goes so that the client's outbound buffer stays bounded.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { ChunkWriter } from "./chunks.ts";
import { confirmed } from "./publisher.ts";

/**
 * A flush (a round trip to the server) after this many bytes, and at the end of each reply,
 * keeps the client's outbound buffer bounded: the client buffers what the socket has not
 * taken yet, and a reply is done only once the server has it, whoever reads it. One flush is
 * awaited only when the next one starts, so the next bytes are read and packed meanwhile
 * rather than after the round trip (a fifth of a replay's time when it waited): at most about
 * twice this many bytes are buffered.
 */
const FLUSH_EVERY_BYTES = 1 << 20;
const DEFAULT_MAX_PAYLOAD = 1 << 20;

export function replyWriter(nc: NatsConnection, epoch: string, replies: string[]): ChunkWriter {
  // Requesters answered together may share one inbox (a consumer reusing it): it gets each chunk once.
  const subjects = new Set(replies);
  let unflushed = 0;
  let flushing: Promise<void> = Promise.resolve();
  const encoder = new TextEncoder();
  return new ChunkWriter(epoch, nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD, async (chunk, last) => {
    const payload = encoder.encode(chunk);
    for (const reply of subjects) {
      nc.publish(reply, payload);
      unflushed += payload.length;
      if (unflushed >= FLUSH_EVERY_BYTES) {
        unflushed = 0;
        await flushing;
        flushing = confirmed(nc);
        // Its failure is thrown where it is awaited, with the next flush or at the end.
        flushing.catch(() => {});
      }
    }
    if (last) {
      await flushing;
      if (unflushed > 0) {
        unflushed = 0;
        await confirmed(nc);
      }
    }
  });
}
