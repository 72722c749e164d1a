/**
 * The body of `GET /v1/objects` (read-api.ts): the state read a page at a time as the client takes it, written as the
 * very bytes `c.json` would write for the whole of it.
 */
import type { Logger } from "../sdk/telemetry.ts";
import { untilAborted } from "../sdk/store-reads.ts";
import { jsonText, type CurrentObject } from "../sdk/model.ts";

const encoder = new TextEncoder();

type Page = { version: number; objects: CurrentObject[] };

/**
 * `{"epoch":…,"version":…,"items":[…]}`, byte for byte as JSON.stringify writes it, once the first two pages are read:
 * the whole of it when the first page was the last (sent with its length), else a stream of what was read and then
 * the rest, pulled a page at a time (sent chunked). Bun frames a stream by whether it ended before Bun first wrote
 * (a length if so), which the answer to a HEAD cannot know: it says chunked. A client gone (`signal`) or a cancelled
 * body ends the read. `unanswered` gives up the wait for the first two pages (a read the store holds goes on, its
 * result dropped): the request is answered otherwise.
 */
export async function objectsBody(
  epoch: string,
  pages: AsyncGenerator<Page>,
  signal: AbortSignal,
  unanswered: AbortSignal,
  logger: Logger,
): Promise<string | ReadableStream<Uint8Array>> {
  let written = 0;
  let left = false;
  const leave = () => {
    left = true;
    void pages.return(undefined);
  };
  signal.addEventListener("abort", leave, { once: true });
  const items = (objects: CurrentObject[]) => {
    let text = "";
    for (const object of objects) text += (written++ === 0 ? "" : ",") + jsonText(object);
    return text;
  };
  const opened = async () => {
    const first = await pages.next();
    if (first.done) throw new Error("the snapshot had no first page");
    const version = JSON.stringify(first.value.version);
    const opening = `{"epoch":${JSON.stringify(epoch)},"version":${version},"items":[${items(first.value.objects)}`;
    return { opening, second: await pages.next() };
  };
  const { opening, second } = await untilAborted(opened(), unanswered).catch((error: unknown) => {
    if (unanswered.aborted) leave();
    throw error;
  });
  if (second.done) return `${opening}]}`;
  let unsent = opening + items(second.value.objects);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          let text = unsent;
          unsent = "";
          while (text === "") {
            const next = await pages.next();
            // Never the closing "]}" after a cut: what was sent must not parse as the whole state.
            if (left) throw new Error("the client went away");
            if (next.done) {
              controller.enqueue(encoder.encode("]}"));
              return controller.close();
            }
            text = items(next.value.objects);
          }
          controller.enqueue(encoder.encode(text));
        } catch (error) {
          if (!left) logger.warn("/v1/objects failed after its first bytes; the response is cut short", { error });
          controller.error(error);
        }
      },
      cancel: leave,
    },
    // Pulled only when the client has taken what was enqueued: one page held at a time.
    { highWaterMark: 0 },
  );
}
