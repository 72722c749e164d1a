/**
 * A list whose items are each given once, checked alike wherever one is taken (the client library's `streams` and
 * `kinds`, `/v1/watch`'s `kinds`, `/v1/objects`' `kind`): one given twice is a mistake to say, not something to drop
 * unseen, and the same list is refused in the same words by the library and by the server.
 */
import * as v from "valibot";

export function eachOnce() {
  return v.check(
    (items: string[]) => new Set(items).size === items.length,
    ({ input }) => `${JSON.stringify(input.find((item, i) => input.indexOf(item) !== i))} is given twice`,
  );
}
