/**
 * `http.tls`'s certificate and key are read as credential files (sdk/credential-file.ts), by the config's schema and
 * at the listener's start: read as they were, with readFileSync, a FIFO nobody writes blocked the event loop for ever,
 * and `--check` never ended.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { testPki } from "../simulator/certs.ts";
import { tempDir } from "../testing/index.ts";
import { fifoWithLateWriter } from "./fifo-writer.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function issuesOf(tls: { cert: string; key: string }): Promise<string[]> {
  const error = await resolveConfig({ http: { tls } }, { baseDir: "/", registry: builtins }).catch((e) => e);
  return error instanceof ConfigError ? error.issues.map((i) => `${i.path}: ${i.message}`) : [];
}

test("a certificate or key that is no regular file is a config error saying what it is, at once", async () => {
  const pki = await testPki();
  const dir = await tempDir("kubemeta-http-tls-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, "cert.pem");
  cleanups.push(fifoWithLateWriter(fifo, "no certificate").stop);
  const began = Date.now();
  expect(await issuesOf({ cert: fifo, key: pki.serverKeyFile })).toEqual([
    `http.tls.cert: file ${fifo} is a FIFO, not a regular file`,
  ]);
  expect(Date.now() - began).toBeLessThan(3_000);
  expect(await issuesOf({ cert: pki.serverCertFile, key: dir })).toEqual([
    `http.tls.key: file ${dir} is a directory, not a regular file`,
  ]);
});

test("a key encrypted with a passphrase (kubemeta takes none) is a config error saying so", async () => {
  const pki = await testPki();
  const dir = await tempDir("kubemeta-http-tls-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const encrypted = join(dir, "server.key");
  const openssl = Bun.spawnSync(
    ["openssl", "pkey", "-in", pki.serverKeyFile, "-aes256", "-passout", "pass:secret-pass", "-out", encrypted],
    { stderr: "pipe" },
  );
  expect(openssl.exitCode).toBe(0);
  expect(await issuesOf({ cert: pki.serverCertFile, key: encrypted })).toEqual([
    "http.tls.key: the key is encrypted with a passphrase, which kubemeta takes none of: write it unencrypted " +
      "(openssl pkey -in <key> -out <new key>)",
  ]);
});
