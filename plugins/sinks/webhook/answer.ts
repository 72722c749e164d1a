/**
 * The body of a receiver's answer, read only as far as the log uses it. The status is the answer: a body is read for
 * the words of a refusal (`detail`, its first 200 characters), and never waited for past them, so that a receiver
 * whose body never ends (a URL that streams, or a download) neither fills memory nor turns an answer into a timeout.
 */
import { leadingText } from "../../../protocol/leading-text.ts";

/** More than the log keeps, so that a credential the receiver echoes is whole where it is redacted. */
const DETAIL_BYTES = 4096;

/**
 * The first `DETAIL_BYTES` of the body of a refusal, or nothing of an accepted request's; the rest is cancelled. A body
 * cut short (the request's timeout or the sink's stop, a connection reset) is what came of it. A redirect's is where
 * it leads, its body unread.
 */
export async function answerText(response: Response): Promise<string> {
  const location = response.headers.get("location");
  if (response.status >= 300 && response.status < 400 && location) {
    await response.body?.cancel().catch(() => {});
    // A signed POST is not sent on to wherever a redirect says (a 303 would make it a GET): the operator decides.
    return `redirected to ${location} (not followed: write it as the sink's url)`;
  }
  if (response.ok) {
    response.body?.cancel().catch(() => {});
    return "";
  }
  return leadingText(response.body, DETAIL_BYTES);
}
