/**
 * `http.tls`'s certificate is read at start only (README, the `http` table): one that has expired, or is not valid
 * yet, is served as it is, and every client that verifies it refuses the connection. `--check` and the start say so.
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import * as v from "valibot";
import { createHttpServer } from "../host/http.ts";
import { certificateWarnings, type HttpConfig, httpSchema } from "../host/http-config.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { testPki } from "../simulator/certs.ts";
import { tempDir } from "../testing/index.ts";
import { exitWithin, MAIN, Output, runMain } from "./reliability-process.ts";

/** A self-signed certificate for 127.0.0.1 whose validity ended a day ago (`-days -1`: notAfter before notBefore). */
async function expiredPair(dir: string): Promise<{ cert: string; key: string }> {
  const [cert, key, csr] = [join(dir, "server.crt"), join(dir, "server.key"), join(dir, "server.csr")];
  for (const command of [
    ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
    ["openssl", "req", "-new", "-key", key, "-subj", "/CN=127.0.0.1", "-out", csr],
    ["openssl", "x509", "-req", "-in", csr, "-signkey", key, "-days", "-1", "-out", cert],
  ])
    expect(Bun.spawnSync(command, { stderr: "pipe" }).exitCode).toBe(0);
  return { cert, key };
}

test("an expired certificate is a warning from --check and at start, naming when it expired", async () => {
  const dir = await tempDir("kubemeta-http-tls-expiry-");
  try {
    const { cert, key } = await expiredPair(dir);
    const config = join(dir, "kubemeta.yaml");
    await Bun.write(
      config,
      `http: { address: 127.0.0.1, port: 0, tls: { cert: ${cert}, key: ${key} } }\nsinks: [{ type: sse }]\n`,
    );
    const warning = /^kubemeta: warning: http\.tls\.cert: the certificate expired on \d{4}-\d\d-\d\dT[^ ]+Z: /m;
    const checked = await runMain(["--check", "--config", config], { cwd: dir });
    expect(checked).toMatchObject({ code: 0, stdout: "config is valid\n" });
    expect(checked.stderr).toMatch(warning);

    const child = Bun.spawn([process.execPath, "run", MAIN, "--config", config], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    const stdout = new Output(child.stdout);
    try {
      await stdout.waitFor(/"msg":"http\.tls\.cert: the certificate expired on /, 20_000);
      const said = stdout.text.split("\n").filter((line) => line.includes("the certificate expired"));
      expect(said.map((line) => JSON.parse(line).level)).toEqual(["warn"]);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exitWithin(child, 20_000)).toBe(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

test("a certificate not valid yet (a clock behind) is a warning; one within its validity none", async () => {
  const pki = await testPki();
  const http = { tls: { cert: pki.serverCertFile, key: pki.serverKeyFile } } as HttpConfig;
  const from = Date.parse(new X509Certificate(pki.serverCertPem).validFrom);
  expect(certificateWarnings(http, from - 60_000)).toEqual([
    `http.tls.cert: the certificate is valid only from ${new Date(from).toISOString()}: until then every client ` +
      "that verifies it refuses the connection (is this machine's clock right?)",
  ]);
  expect(certificateWarnings(http, from + 60_000)).toEqual([]);
});

test("/metrics says when the served certificate ends, in Unix seconds; without tls, no such series", async () => {
  const pki = await testPki();
  const metricsOf = async (tls?: { cert: string; key: string }) => {
    const http = createHttpServer({
      config: v.parse(httpSchema, { address: "127.0.0.1", port: 0, tls }),
      logger: silentLogger,
      metrics: createMetrics(),
      readiness: async () => ({ ready: true, waiting: [] }),
    });
    await http.listen();
    http.serve();
    try {
      return await (await fetch(`${http.url()}/metrics`, { tls: { ca: pki.caPem } })).text();
    } finally {
      await http.stop();
    }
  };
  const end = Date.parse(new X509Certificate(pki.serverCertPem).validTo) / 1000;
  const served = await metricsOf({ cert: pki.serverCertFile, key: pki.serverKeyFile });
  expect(served).toContain(`\nkubemeta_tls_certificate_expiry_timestamp_seconds ${end}\n`);
  expect(served).toContain("# TYPE kubemeta_tls_certificate_expiry_timestamp_seconds gauge\n");
  expect(await metricsOf()).not.toContain("kubemeta_tls_certificate_expiry");
});
