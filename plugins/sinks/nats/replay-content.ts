/**
 * What a replay reply carries, read from the committed log: the updates after the requester's position, or the
 * stream's state with the reason it starts over (sdk/resume.ts). The responder (replay.ts) decides who is answered
 * when; this reads the log a page at a time into the reply's chunks (chunks.ts), whoever the reply goes to. A read
 * that fails throws StoreReadFailed (sdk/store-reads.ts): the store's failure, which the requester outlasts. A reply
 * under way when the sink stops throws at its next chunk, whatever is left of it: the responder ends it with an error
 * chunk while the connection is still open (a reset of `shared` to many requesters is each chunk once per requester,
 * which the host's deadline for a stop does not wait out), and the requester asks again. One waiting on a read of the
 * store ends at once so: the read goes on, a remote store that stopped answering given up only at its timeout.
 */
import { isBehindRetention, SNAPSHOT_PAGE, type CommittedLog } from "../../../sdk/contract.ts";
import { ALL } from "../../../protocol/streams.ts";
import { fromStore, pagesUntilAborted, readingStore, untilAborted } from "../../../sdk/store-reads.ts";
import { snapshotTime } from "../../../sdk/snapshot-time.ts";
import { envelopeJson, snapshotEnvelopeJson, type Update } from "../../../sdk/model.ts";
import type { ReplayRequest, ResetReason } from "../../../protocol/replay.ts";
import type { ChunkWriter } from "./chunks.ts";

/** Updates read from the log at a time. */
const PAGE = 2_000;

export class ReplayContent {
  constructor(
    private readonly log: CommittedLog,
    /** Counts a reply sent in full, by what it carried, once per requester it answered. */
    private readonly count: (result: "replay" | "reset", requesters?: number) => void,
    /** Aborted as the sink stops. */
    private readonly stopping: AbortSignal,
  ) {}

  /** Sends what `add` filled, then throws if the sink is stopping: no more chunks go out for that reply. */
  private async sent(sending: Promise<void>): Promise<void> {
    await sending;
    this.stopping.throwIfAborted();
  }

  async sendState(request: ReplayRequest, reason: ResetReason, writer: ChunkWriter, requesters = 1): Promise<void> {
    const { log } = this;
    writer.markReset(reason);
    let version = 0;
    let time: string | undefined;
    // An answer holds one page, never the stream's whole state: the responder's `concurrency` bounds what a flood of
    // resets holds.
    const pages = readingStore(
      log.snapshotPages(request.stream === ALL ? {} : { stream: request.stream }, SNAPSHOT_PAGE),
    );
    for await (const page of pagesUntilAborted(pages, this.stopping)) {
      version = page.version;
      time ??= await snapshotTime(log, version, this.stopping);
      for (const object of page.objects) {
        const sending = writer.add(snapshotEnvelopeJson(log.epoch, request.stream, object, time), object.version);
        if (sending) await this.sent(sending);
      }
    }
    await writer.finish(version);
    this.count("reset", requesters);
  }

  /**
   * Sends the updates after `from`; false, sending nothing, when its first read finds retention past `from` since
   * the request was let in: it is answered with the stream's state then, which needs a turn to read (replay-line.ts).
   */
  async sendUpdates(request: ReplayRequest, from: number, writer: ChunkWriter): Promise<boolean> {
    const { log } = this;
    const { stream } = request;
    const through = Math.min(request.to ?? log.head(), log.head());
    let after = from;
    for (;;) {
      let page: Update[];
      try {
        page = await untilAborted(
          log.read({ stream, after, to: through, limit: PAGE }).catch(fromStore),
          this.stopping,
        );
      } catch (error) {
        if (isBehindRetention(error) && after === from) return false;
        throw error;
      }
      for (const update of page) {
        const sending = writer.add(envelopeJson(log.epoch, update, stream), update.version);
        if (sending) await this.sent(sending);
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.version;
    }
    await writer.finish(through);
    this.count("replay");
    return true;
  }
}
