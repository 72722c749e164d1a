/**
 * A credential file that is a FIFO (a secret a sidecar has not written yet): its read would block for ever, holding
 * one of the two threads of Bun's file pool, and the sink retries its connection, so a second blocked attempt left
 * none for any other file read of the process. The sink reads its files only if they are regular files
 * (sdk/credential-file.ts): each attempt fails at once saying what the file is, and the next one reads it again.
 */
import { afterEach, expect, test } from "bun:test";
import { closeSync, constants, copyFileSync, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { readFile, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { connect, nkeyAuthenticator, nkeys } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { until } from "../protocol/retry.ts";
import { testPki } from "../simulator/certs.ts";
import { rawPod, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { createLogger } from "../host/logger.ts";
import { PREFIX, startNatsHost, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Hands `text` to every read blocked on the FIFO (each open waits for a writer); none blocked: nothing to do. */
function feedFifo(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENXIO") return;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** A directory with a FIFO, and a link to it where the config's key points (as a Secret's key is a link). */
async function fifoBehind(name: string): Promise<{ dir: string; fifo: string; link: string }> {
  const dir = await tempDir("kubemeta-nats-fifo-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, `${name}.fifo`);
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const link = join(dir, name);
  await symlink(fifo, link);
  return { dir, fifo, link };
}

/**
 * Once three attempts have failed (without the check, two of them blocked on the FIFO would hold both threads of
 * Bun's file pool), another file read of the process completes, and the failure says what the file is.
 */
async function expectRefusedWithoutBlocking(th: TestHost, dir: string, lines: string[], said: string): Promise<void> {
  await waitFor(
    () => /kubemeta_nats_connect_failures_total\{sink="nats"\} ([3-9]|\d\d)/.test(th.host.metrics.render()),
    15_000,
    "three failed connection attempts",
  );
  const other = join(dir, "other");
  writeFileSync(other, "read");
  expect(await until(readFile(other, "utf8"), Date.now() + 3_000)).toBe("read");
  expect(lines.find((line) => line.includes("cannot connect to NATS; retrying"))).toContain(said);
}

/** Publishes a pod and waits for it on `server` through a connection of the test's own. */
async function expectPublished(th: TestHost, server: TestNatsServer, nc = connect({ servers: server.url })) {
  const connection = await nc;
  cleanups.push(() => connection.close());
  const seen: Envelope[] = [];
  connection.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
  await connection.flush();
  await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
  await th.changes.flush();
  await waitFor(() => seen.length === 1, 15_000, "the update published over the next attempt's connection");
  expect(seen[0]!.name).toBe("web-1");
}

test(
  "nkeySeedFile a FIFO (through a link): each attempt fails at once saying so, file reads go on; then it connects",
  async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const server = await startNatsServer({ auth: { nkey: user.getPublicKey() } });
    cleanups.push(() => server.destroy());
    const { dir, fifo, link } = await fifoBehind("user.nk");
    const lines: string[] = [];
    const th = await startNatsHost(server, {
      sink: { nkeySeedFile: link, connectTimeout: "200ms" },
      logger: createLogger({ level: "info", write: (line) => void lines.push(line) }),
    });
    cleanups.push(() => th.destroy());
    // Run first (cleanups run last in, first out): reads blocked on the FIFO (none with the check) are let go.
    cleanups.push(async () => feedFifo(fifo, seed));
    await expectRefusedWithoutBlocking(th, dir, lines, `nkeySeedFile ${link} is a FIFO, not a regular file`);

    // The secret written as a regular file: the next attempt reads it.
    const written = join(dir, "user.nk.new");
    writeFileSync(written, seed);
    renameSync(written, link);
    await expectPublished(
      th,
      server,
      connect({ servers: server.url, authenticator: nkeyAuthenticator(user.getSeed()) }),
    );
  },
  SLOW_MS,
);

test(
  "tls.caFile a FIFO: read by the transport at each attempt, refused at once, file reads go on; then it connects",
  async () => {
    const pki = await testPki();
    const server = await startNatsServer({
      tls: { certFile: join(pki.dir, "server.crt"), keyFile: join(pki.dir, "server.key") },
    });
    cleanups.push(() => server.destroy());
    const { dir, fifo, link } = await fifoBehind("ca.crt");
    const lines: string[] = [];
    const th = await startNatsHost(server, {
      sink: { tls: { caFile: link }, connectTimeout: "200ms" },
      logger: createLogger({ level: "info", write: (line) => void lines.push(line) }),
    });
    cleanups.push(() => th.destroy());
    cleanups.push(async () => feedFifo(fifo, ""));
    await expectRefusedWithoutBlocking(th, dir, lines, `tls.caFile ${link} is a FIFO, not a regular file`);

    const written = join(dir, "ca.crt.new");
    copyFileSync(pki.caFile, written);
    renameSync(written, link);
    await expectPublished(th, server, connect({ servers: server.url, tls: { caFile: pki.caFile } }));
  },
  SLOW_MS,
);
