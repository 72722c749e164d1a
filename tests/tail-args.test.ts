/** tail's argument parsing alone (cli/tail-args.ts), where a subprocess adds nothing: what reaches the client. */
import { expect, test } from "bun:test";
import { parseTailArgs, UsageError } from "../cli/tail-args.ts";

test("--ca goes with an https URL, its scheme in any case, and with no http one", () => {
  for (const url of ["https://127.0.0.1:9", "HTTPS://127.0.0.1:9"])
    expect(parseTailArgs(["--url", url, "--ca", "ca.pem"], {})).toMatchObject({ caFile: "ca.pem" });
  expect(() => parseTailArgs(["--url", "http://127.0.0.1:9", "--ca", "ca.pem"], {})).toThrow(
    "--ca: only for an https:// URL",
  );
});

test("an option that takes one value, given twice, is refused, not the last one taken; --stream repeats", () => {
  const url = ["--url", "http://127.0.0.1:9"];
  expect(() => parseTailArgs([...url, "--url", "http://127.0.0.1:10"], {})).toThrow(
    "--url: given more than once; give it once",
  );
  // The value is not said: a token may be one.
  expect(() => parseTailArgs([...url, "--token", "a", "--token=b"], {})).toThrow(
    new UsageError("--token: given more than once; give it once"),
  );
  expect(parseTailArgs([...url, "--stream", "all", "--stream", "shared", "--json", "--json"], {})).toMatchObject({
    streams: ["all", "shared"],
    json: true,
  });
});

test("a stream given twice is refused as the client library refuses it, in a comma list or repeated", () => {
  const url = ["--url", "http://127.0.0.1:9"];
  for (const streams of [["--stream", "all,all"], ["--stream", "all", "--stream", "shared,all"], ["--stream=all, all"]])
    expect(() => parseTailArgs([...url, ...streams], {})).toThrow(new UsageError('--stream: "all" is given twice'));
  expect(parseTailArgs([...url, "--stream", "shared,node/a", "--stream", "all"], {})).toMatchObject({
    streams: ["shared", "node/a", "all"],
  });
});

const ZERO_REFUSED =
  '--idle-timeout: must be more than 0 (there is no turning it off), a duration such as "500ms", "10s", "5m", "24h" ' +
  'or "7d"';

test("--idle-timeout: a duration as the config writes one, over 0, within a timer's range, with --url alone", () => {
  const url = ["--url", "http://127.0.0.1:9"];
  expect(parseTailArgs([...url, "--idle-timeout", "90s"], {})).toMatchObject({ idleTimeoutMs: 90_000 });
  expect(parseTailArgs([...url, "--idle-timeout=1.5m"], {})).toMatchObject({ idleTimeoutMs: 90_000 });
  expect(parseTailArgs(url, {})).toMatchObject({ idleTimeoutMs: undefined });
  const refused: [string[], string][] = [
    [
      [...url, "--idle-timeout", "45"],
      '--idle-timeout: expected a duration such as "500ms", "10s", "5m", "24h" or "7d"',
    ],
    [[...url, "--idle-timeout", "0s"], "--idle-timeout: must be more than 0"],
    // A 0 without its unit, as a user turning the check off writes it: the rule it breaks, not only the forms.
    [[...url, "--idle-timeout", "0"], ZERO_REFUSED],
    [[...url, "--idle-timeout", "0.0"], ZERO_REFUSED],
    [[...url, "--idle-timeout", "0.2ms"], "--idle-timeout: must be more than 0"],
    [[...url, "--idle-timeout", "30d"], "--idle-timeout: must be at most 596h (2^31-1 ms: no timer waits longer)"],
    [["--nats", "nats://127.0.0.1:9", "--cluster", "c", "--idle-timeout", "90s"], "--idle-timeout goes with --url"],
  ];
  for (const [args, message] of refused) expect(() => parseTailArgs(args, {})).toThrow(new UsageError(message));
});
