/** `http.address`: what the config takes as the interface to listen on; a listen on a name that does not resolve. */
import { expect, test } from "bun:test";
import * as v from "valibot";
import { createHttpServer } from "../host/http.ts";
import { httpSchema } from "../host/http-config.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { issuesOf } from "./config-issues.ts";

const RULE = "http.address: expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name of this machine";

test("an address is an IP address or a host name; an empty one (a variable set empty) is no interface", async () => {
  for (const address of ["0.0.0.0", "127.0.0.1", "::", "::1", "[::1]", "localhost", "kubemeta-0.example.com"])
    expect(await issuesOf({ http: { address } })).toEqual([]);
  // Bun listened on every interface for "" (logging http://localhost), and failed its listen with ENOTTY for the rest.
  // A URL or one with its port is told where the port goes (config-wrong-values.test.ts).
  const refused = ["", " ", " 127.0.0.1", "999.1.1.1", "10.0.0", "-x", "[127.0.0.1]"];
  for (const address of refused) expect(await issuesOf({ http: { address } })).toEqual([RULE]);
  expect(await issuesOf({ http: { address: "${ADDRESS}" } }, { ADDRESS: "" })).toEqual([RULE]);
});

test("a host name that does not resolve fails the listen naming it and why, not with Bun's ENOTTY", async () => {
  const http = createHttpServer({
    config: v.parse(httpSchema, { address: "kubemeta-no-such-host.invalid", port: 0 }),
    logger: silentLogger,
    metrics: createMetrics(),
    readiness: async () => ({ ready: true, waiting: [] }),
  });
  const error = await http.listen().catch((e: unknown) => e);
  await http.stop();
  expect(String(error)).toMatch(/cannot resolve http\.address kubemeta-no-such-host\.invalid: .*ENOTFOUND/);
});

test("an address of another machine is no config error: its listen fails, as README's http.address says", async () => {
  // TEST-NET-1 (RFC 5737): no machine has it. The config takes it; only the listen can tell.
  const config = { address: "192.0.2.1", port: 0 };
  expect(await issuesOf({ http: config })).toEqual([]);
  const http = createHttpServer({
    config: v.parse(httpSchema, config),
    logger: silentLogger,
    metrics: createMetrics(),
    readiness: async () => ({ ready: true, waiting: [] }),
  });
  const error = await http.listen().catch((e: unknown) => e);
  await http.stop();
  expect(String(error)).toMatch(/EADDRNOTAVAIL/);
});
