/**
 * How much an `Accept` header (RFC 9110 §12.5.1) wants one media type: media types are compared in any case, and a
 * list's ranges, weights and parameters are read as HTTP says, not as one string.
 */

/** A weight as RFC 9110 §12.4.2 writes one: 0 to 1, at most three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The weight `accept` gives `type` (a lower-case `type/subtype`): that of the most specific range matching it (the
 * type itself, then its type's wildcard as `text/*`, then the wildcard for all), 0 where none does; a header absent
 * or empty accepts anything (1). An element whose weight is no qvalue is skipped; parameters but `q` are not compared.
 */
export function acceptWeight(accept: string | undefined, type: string): number {
  if (accept === undefined || accept.trim() === "") return 1;
  const ranges = [type, `${type.slice(0, type.indexOf("/"))}/*`, "*/*"];
  let best = { rank: ranges.length, weight: 0 };
  for (const element of accept.split(",")) {
    const [range = "", ...parameters] = element.split(";").map((part) => part.trim().toLowerCase());
    const rank = ranges.indexOf(range);
    if (rank < 0 || rank >= best.rank) continue;
    const q = parameters.find((parameter) => parameter.startsWith("q="))?.slice(2) ?? "1";
    if (QVALUE.test(q)) best = { rank, weight: Number(q) };
  }
  return best.weight;
}
