/** Valibot pieces that plugin schemas share. */
import * as v from "valibot";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "10s", "5m", "24h", "7d" (or a bare number of milliseconds) into milliseconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(input.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

/** A duration in config: "10s", "5m", "24h", "7d", or milliseconds as a number. Outputs milliseconds. */
export const duration = v.pipe(
  v.union([v.string(), v.number()]),
  v.check((input) => parseDuration(input) !== undefined, 'expected a duration such as "500ms", "10s", "5m", "24h" or "7d"'),
  v.transform((input) => parseDuration(input)!),
);

/** A TCP port. */
export const port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));

/** A positive integer. */
export const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));
