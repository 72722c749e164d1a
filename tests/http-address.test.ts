/** `http.address`: what the config takes as the interface to listen on. */
import { expect, test } from "bun:test";
import { issuesOf } from "./config-issues.ts";

const RULE = "http.address: expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name of this machine";

test("an address is an IP address or a host name; an empty one (a variable set empty) is no interface", async () => {
  for (const address of ["0.0.0.0", "127.0.0.1", "::", "::1", "[::1]", "localhost", "kubemeta-0.example.com"])
    expect(await issuesOf({ http: { address } })).toEqual([]);
  // Bun listened on every interface for "" (logging http://localhost), and failed its listen with ENOTTY for the rest.
  const refused = ["", " ", " 127.0.0.1", "999.1.1.1", "10.0.0", "http://0.0.0.0", "0.0.0.0:8080", "-x", "[127.0.0.1]"];
  for (const address of refused) expect(await issuesOf({ http: { address } })).toEqual([RULE]);
  expect(await issuesOf({ http: { address: "${ADDRESS}" } }, { ADDRESS: "" })).toEqual([RULE]);
});
