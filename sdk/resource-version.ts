/**
 * Which resourceVersions are a point to resume from: the core stores no other as a resume point, and the Kubernetes
 * source sends no other back in a watch's query. One rule for both, so that no resume point is stored that the source
 * would not resume from. The API
 * server's are opaque strings, but kube-apiserver's are etcd revisions (20 digits at most), and an aggregated API
 * server's are no longer than an object's name. One with a control character, a lone surrogate (which URLSearchParams
 * sends as U+FFFD: another resourceVersion than the server gave) or thousands of characters (a URL past the server's
 * limit) only a hostile or broken server writes, and sent back it would fail every watch after it for good (400, 414,
 * 431, none of which relists), the resource stale while /readyz says ready.
 */

const MAX_LENGTH = 1024;
/** C0, DEL and C1. */
const CONTROL = /\p{Cc}/u;

/** Whether `value` is a resourceVersion to resume from: a string, not empty, of what an API server writes. */
export function resumable(value: unknown): value is string {
  return (
    typeof value === "string" &&
    value !== "" &&
    value.length <= MAX_LENGTH &&
    !CONTROL.test(value) &&
    value.isWellFormed()
  );
}

/** One that is not, as a log line or /readyz says it: quoted, escaped, cut short. */
export function shownResourceVersion(value: unknown): string {
  if (typeof value !== "string") return value === null ? "null" : `a ${typeof value}`;
  return value.length > 40
    ? `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)`
    : JSON.stringify(value);
}
