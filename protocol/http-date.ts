/**
 * HTTP dates (RFC 9110 §5.6.7): the IMF-fixdate senders write, and the obsolete RFC 850 and asctime forms a recipient
 * must read too. All three are GMT: Date.parse reads asctime, which names no zone, as the local time. RFC 9110 asks a
 * recipient to read the Internet Message Format's other dates as well, and senders write them: a day of one digit
 * (Java's DateTimeFormatter.RFC_1123_DATE_TIME), a numeric zone (Python's email.utils.formatdate: `-0000`), `UTC`
 * (Go's time.RFC1123 of a UTC time); each names its zone, read as it says.
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAY_NAME = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAY_NAME = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTH = `(?<month>${MONTHS.join("|")})`;
const TIME = "(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})";
/** GMT (or UT, UTC), or a numeric zone: `+hhmm` ahead of GMT, `-hhmm` behind it. */
const ZONE = "(?:GMT|UTC?|(?<offset>[+-]\\d{4}))";
const FORMS = [
  new RegExp(`^(?:${DAY_NAME}, )?(?<day>\\d{1,2}) ${MONTH} (?<year>\\d{4}) ${TIME} ${ZONE}$`),
  new RegExp(`^${LONG_DAY_NAME}, (?<day>\\d{2})-${MONTH}-(?<shortYear>\\d{2}) ${TIME} GMT$`),
  new RegExp(`^${DAY_NAME} ${MONTH} (?<day>[ \\d]\\d) ${TIME} (?<year>\\d{4})$`),
];

/**
 * An RFC 850 date's two-digit year: the most recent past year ending in them, unless the next century's is at most
 * 50 years ahead (RFC 9110: one more than 50 years in the future is read as the past).
 */
function fullYear(twoDigits: number, now: number): number {
  const thisYear = new Date(now).getUTCFullYear();
  const past = thisYear - ((((thisYear - twoDigits) % 100) + 100) % 100);
  return past + 100 <= thisYear + 50 ? past + 100 : past;
}

/** How far a numeric zone (`+0130`) is ahead of GMT, in minutes: 0 for none; undefined past 59 minutes. */
function offsetMinutes(offset: string | undefined): number | undefined {
  if (!offset) return 0;
  const [hours, minutes] = [Number(offset.slice(1, 3)), Number(offset.slice(3))];
  if (minutes >= 60) return undefined;
  return (offset.startsWith("-") ? -1 : 1) * (hours * 60 + minutes);
}

/** The instant (ms since the epoch) an HTTP date names; undefined for anything else, or a day no month has. */
export function parseHttpDate(text: string, now = Date.now()): number | undefined {
  const fields = FORMS.map((form) => form.exec(text)?.groups).find((groups) => groups !== undefined);
  if (!fields) return undefined;
  const year = fields.year !== undefined ? Number(fields.year) : fullYear(Number(fields.shortYear), now);
  const month = MONTHS.indexOf(fields.month!);
  const [day, hour, minute, second] = [fields.day, fields.hour, fields.minute, fields.second].map(Number);
  // Date.UTC carries overflow over (31 Nov is 1 Dec): the day is checked alone, before the time that a leap second
  // (23:59:60, as RFC 9110 allows) carries into the next day.
  const date = new Date(Date.UTC(year, month, day!));
  const named = date.getUTCFullYear() === year && date.getUTCMonth() === month && date.getUTCDate() === day;
  const ahead = offsetMinutes(fields.offset);
  if (!named || hour! >= 24 || minute! >= 60 || second! > 60 || ahead === undefined) return undefined;
  return date.getTime() + ((hour! * 60 + minute! - ahead) * 60 + second!) * 1000;
}
