/** tail's argument parsing alone (cli/tail-args.ts), where a subprocess adds nothing: what reaches the client. */
import { expect, test } from "bun:test";
import { parseTailArgs } from "../cli/tail-args.ts";

test("--ca goes with an https URL, its scheme in any case, and with no http one", () => {
  for (const url of ["https://127.0.0.1:9", "HTTPS://127.0.0.1:9"])
    expect(parseTailArgs(["--url", url, "--ca", "ca.pem"], {})).toMatchObject({ caFile: "ca.pem" });
  expect(() => parseTailArgs(["--url", "http://127.0.0.1:9", "--ca", "ca.pem"], {})).toThrow(
    "--ca: only for an https:// URL",
  );
});
